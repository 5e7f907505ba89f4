"""Everything a worker process holds: settings, its trunk, a Postgres pool, Redis, the SIP agent.

Built once per process after it starts (never inherited across fork) and torn
down on shutdown, SIP agent last so live calls are recorded before it goes.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis
from psycopg_pool import ConnectionPool

from shared import metrics
from shared.db.pool import open_pool
from shared.errors import AuthRejected, ConfigError
from shared.logs import register_secret
from shared.settings import Settings, Trunk
from worker.gate import RegistrationGate
from worker.sip import RegistrationResult, SipAccountConfig, SipAgent
from worker.sip.errors import CertificateRejected

log = logging.getLogger(__name__)


@dataclass
class WorkerRuntime:
    settings: Settings
    trunk: Trunk
    name: str
    pool: ConnectionPool
    redis: redis.Redis
    agent: SipAgent
    gate: RegistrationGate | None = None
    started_at: float = field(default_factory=time.monotonic)

    def close(self, grace_s: float = 10.0) -> None:
        if self.gate is not None:
            self.gate.shutdown()
        self.agent.stop(grace_s=grace_s)
        self.pool.close()
        self.redis.close()


_current: WorkerRuntime | None = None


def current() -> WorkerRuntime:
    if _current is None:
        raise RuntimeError("the worker runtime is not started in this process")
    return _current


def account_for(trunk: Trunk, local_port: int = 0) -> SipAccountConfig:
    register_secret(trunk.password.get_secret_value())
    return SipAccountConfig(
        registrar=trunk.registrar,
        username=trunk.username,
        password=trunk.password.get_secret_value(),
        transport=trunk.transport,
        realm=trunk.realm,
        domain=trunk.domain,
        local_port=local_port,
        name=trunk.name,
        register=trunk.registers,
        outbound_proxy=trunk.outbound_proxy,
        sips=trunk.sips,
        tls_ca_file=str(trunk.tls_ca_file) if trunk.tls_ca_file else None,
        tls_verify=trunk.tls_verify,
        sip_outbound=trunk.rfc5626_outbound,
    )


def register_until_up(agent: SipAgent, trunk: Trunk, *, attempts: int | None = None) -> RegistrationResult:
    """Start the agent and keep REGISTERing with backoff; a worker consumes nothing before this returns."""
    result = agent.start()
    delay, tried = 2.0, 1
    while result is not None and not result.registered:
        _count_registration(trunk.name, result)
        log.error("REGISTER to trunk %s failed: %s %s", trunk.name, result.status, result.reason)
        if attempts is not None and tried >= attempts:
            if result.certificate_rejected:
                raise CertificateRejected(result.reason)
            raise AuthRejected(f"trunk {trunk.name}: REGISTER answered {result.status} {result.reason}")
        time.sleep(delay)
        delay, tried = min(delay * 2, 60.0), tried + 1
        result = agent.reregister()
    if result is not None:
        _count_registration(trunk.name, result)
    return result or _no_registration()


def _no_registration(timeout_s: float = 0) -> RegistrationResult:
    return RegistrationResult(0, "registration disabled", True, 0, datetime.now(UTC))


def _count_registration(trunk: str, result: RegistrationResult) -> None:
    if result.registered:
        word = "ok"
    elif result.status in (401, 403, 407):
        word = "auth_failed"
    else:
        word = "error"
    metrics.REGISTRATIONS.labels(trunk, word).inc()


def start(
    settings: Settings,
    trunk_name: str | None,
    *,
    name: str | None = None,
    stop_consuming: Callable[[], None] = lambda: None,
    resume_consuming: Callable[[], None] = lambda: None,
    register_attempts: int | None = None,
) -> WorkerRuntime:
    """Build this process's runtime; blocks until the trunk account is registered."""
    global _current
    if settings.database_url is None:
        raise ConfigError("DIALER_DATABASE_URL: a worker needs the dialer's Postgres")
    if settings.redis_url is None:
        raise ConfigError("DIALER_REDIS_URL: a worker needs the dialer's Redis")
    trunk = settings.trunk(trunk_name)
    worker_name = name or f"{socket.gethostname()}:{os.getpid()}"
    agent = SipAgent(
        account_for(trunk, settings.sip_local_port),
        max_calls=settings.calls_per_process,
        max_call_starts_per_s=settings.call_starts_per_s,
        # The ladder of challenges is for `dialer call`; on the fleet it costs ~1.3 ms CPU per call.
        observe_challenges=False,
    )
    up = metrics.REGISTRATION_UP.labels(trunk.name, worker_name)
    # Counters start at 0 for this trunk, so rate() and increase() see their first event.
    for result in ("ok", "auth_failed", "error"):
        metrics.REGISTRATIONS.labels(trunk.name, result).inc(0)
    metrics.DUPLICATE_DELIVERIES.labels(trunk.name).inc(0)
    try:
        register_until_up(agent, trunk, attempts=register_attempts)
    except BaseException:
        agent.stop(grace_s=0)  # the process's one Endpoint must not outlive a start that failed
        raise
    up.set(1)
    metrics.TRUNK_HEALTHY.labels(trunk.name).set(1)
    runtime = WorkerRuntime(
        settings=settings,
        trunk=trunk,
        name=worker_name,
        pool=open_pool(settings.database_url, min_size=1, max_size=settings.calls_per_process + 1, name="worker",
                       wait=False),
        redis=redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5),
        agent=agent,
    )

    def on_change(registered: bool) -> None:
        up.set(1 if registered else 0)
        metrics.TRUNK_HEALTHY.labels(trunk.name).set(1 if registered else 0)
        if registered:
            from worker.store import flag_trunk

            with runtime.pool.connection() as conn:
                flag_trunk(conn, trunk.name, healthy=True)

    runtime.gate = RegistrationGate(
        # A trunk that does not REGISTER has nothing to re-register: the gate reopens after its backoff
        # and the next job tries again (a refused certificate consumes no job, see job_runner).
        agent.reregister if trunk.registers else _no_registration,
        stop_consuming=stop_consuming,
        resume_consuming=resume_consuming,
        on_change=on_change,
    )
    _current = runtime
    return runtime


def stop(grace_s: float = 10.0) -> None:
    global _current
    if _current is not None:
        runtime, _current = _current, None
        runtime.close(grace_s)
