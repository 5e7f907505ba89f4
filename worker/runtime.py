"""Everything a worker process holds: settings, its trunk, a Postgres pool, Redis, the SIP agent.

Built once per process after it starts (never inherited across fork) and torn
down on shutdown, SIP agent last so live calls are recorded before it goes.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
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
from worker import spool
from worker.gate import RegistrationGate, what_to_check
from worker.health import HealthFile
from worker.sip import RegistrationResult, SipAccountConfig, SipAgent
from worker.sip.capacity import worker_limits
from worker.sip.errors import CertificateRejected
from worker.sip.network import NetworkSettings, plan_addresses, rtp_slice

log = logging.getLogger(__name__)

# How often a worker process looks for outcomes spooled on this host during a Postgres outage.
SPOOL_REPLAY_S = 10.0


@dataclass
class WorkerRuntime:
    settings: Settings
    trunk: Trunk
    name: str
    pool: ConnectionPool
    redis: redis.Redis
    agent: SipAgent
    gate: RegistrationGate | None = None
    health: HealthFile | None = None
    started_at: float = field(default_factory=time.monotonic)
    _closing: threading.Event = field(default_factory=threading.Event)

    def replay_spool_forever(self, every_s: float = SPOOL_REPLAY_S) -> None:
        """Write outcomes spooled on this host (worker/spool.py): at once, then while any wait."""
        folder = spool.spool_dir(self.settings.data_dir)

        def run() -> None:
            while True:
                if spool.pending(folder):
                    try:
                        spool.replay(self.pool, folder)
                    except Exception:  # a bad file or a broken pool must not end the replays
                        log.exception("replaying spooled outcomes failed")
                if self._closing.wait(every_s):
                    return

        threading.Thread(target=run, name="spool-replay", daemon=True).start()

    def close(self, grace_s: float = 10.0) -> None:
        self._closing.set()
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


def network_of(settings: Settings) -> NetworkSettings:
    """DIALER_SIP_BIND_ADDRESS, DIALER_SIP_PUBLIC_ADDRESS and DIALER_RTP_PORT_RANGE, as the SIP agent takes them."""
    low, high = settings.rtp_ports or (0, 0)
    return NetworkSettings(settings.sip_bind_address, settings.sip_public_address, low, high)


def account_for(
    trunk: Trunk,
    local_port: int = 0,
    *,
    network: NetworkSettings | None = None,
    process: tuple[int, int] = (0, 1),
    calls_per_process: int = 4,
) -> SipAccountConfig:
    """The trunk's SIP account for worker process ``process = (index, count)`` on this host.

    Addresses are planned here (worker/sip/network.py), so a bad setting or a
    registrar with no route stops the process at start with one line.
    """
    register_secret(trunk.password.get_secret_value())
    network = network or NetworkSettings()
    where = plan_addresses(trunk.outbound_proxy or trunk.registrar, network)  # the first hop, as SipAccountConfig
    rtp_port, rtp_count = rtp_slice(network, process[0], process[1], calls_per_process)
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
        bind_address=where.bind,
        public_address=where.advertise,
        rtp_port=rtp_port,
        rtp_port_count=rtp_count,
    )


def register_until_up(agent: SipAgent, trunk: Trunk, *, attempts: int | None = None) -> RegistrationResult:
    """Start the agent and keep REGISTERing with backoff; a worker consumes nothing before this returns.

    Each result is counted by the agent's registration callback (see :func:`start`).
    """
    result = agent.start()
    delay, tried = 2.0, 1
    while result is not None and not result.registered:
        log.error("REGISTER to trunk %s failed: %s %s; retrying in %.0f s; check %s", trunk.name, result.status,
                  result.reason, delay, what_to_check(result))
        if attempts is not None and tried >= attempts:
            if result.certificate_rejected:
                raise CertificateRejected(result.reason)
            raise AuthRejected(f"trunk {trunk.name}: REGISTER answered {result.status} {result.reason}")
        time.sleep(delay)
        delay, tried = min(delay * 2, 60.0), tried + 1
        result = agent.reregister()
    return result or _no_registration()


def _no_registration(timeout_s: float = 0) -> RegistrationResult:
    return RegistrationResult(0, "registration disabled", True, 0, datetime.now(UTC))


def registration_word(result: RegistrationResult) -> str:
    """The ``result`` label of dialer_registrations_total."""
    if result.registered:
        return "ok"
    return "auth_failed" if result.status in (401, 403, 407) else "error"


def start(
    settings: Settings,
    trunk_name: str | None,
    *,
    name: str | None = None,
    stop_consuming: Callable[[], None] = lambda: None,
    resume_consuming: Callable[[], None] = lambda: None,
    register_attempts: int | None = None,
    process: tuple[int, int] = (0, 1),
    health: HealthFile | None = None,
) -> WorkerRuntime:
    """Build this process's runtime; blocks until the trunk account is registered.

    From then on every REGISTER result (refresh, retry) is counted, sets
    dialer_registration_up and drives the gate (worker/gate.py); ``health``
    is rewritten on each change, for the supervisor's /healthz.
    """
    global _current
    if settings.database_url is None:
        raise ConfigError("DIALER_DATABASE_URL: a worker needs the dialer's Postgres")
    if settings.redis_url is None:
        raise ConfigError("DIALER_REDIS_URL: a worker needs the dialer's Redis")
    trunk = settings.trunk(trunk_name)
    worker_name = name or f"{socket.gethostname()}:{os.getpid()}"
    limits = worker_limits(settings)
    account = account_for(trunk, settings.sip_local_port, network=network_of(settings), process=process,
                          calls_per_process=limits.calls)
    agent = SipAgent(
        account,
        max_calls=limits.calls,
        max_call_starts_per_s=limits.starts_per_s,
        # The ladder of challenges is for `dialer call`; on the fleet it costs ~1.3 ms CPU per call.
        observe_challenges=False,
    )
    up = metrics.REGISTRATION_UP.labels(trunk.name, worker_name)
    # Counters start at 0 for this trunk, so rate() and increase() see their first event.
    for word in ("ok", "auth_failed", "error"):
        metrics.REGISTRATIONS.labels(trunk.name, word).inc(0)
    metrics.DUPLICATE_DELIVERIES.labels(trunk.name).inc(0)
    gate_box: list[RegistrationGate] = []
    state = health or HealthFile(None)
    state.update(trunk=trunk.name, worker=worker_name, registered=False, gate_open=False)

    def on_result(result: RegistrationResult) -> None:
        # On the SIP thread: metrics are an mmap write; the gate takes it from here on its own thread.
        metrics.REGISTRATIONS.labels(trunk.name, registration_word(result)).inc()
        metrics.REGISTER_RESPONSES.labels(trunk.name, str(result.status)).inc()
        up.set(1 if result.registered else 0)
        state.update(registered=result.registered)
        if gate_box:
            gate_box[0].registration_result(result)

    agent.on_registration_change(on_result)
    try:
        register_until_up(agent, trunk, attempts=register_attempts)
    except BaseException:
        agent.stop(grace_s=0)  # the process's one Endpoint must not outlive a start that failed
        raise
    up.set(1)
    state.update(registered=True)
    metrics.TRUNK_HEALTHY.labels(trunk.name).set(1)
    runtime = WorkerRuntime(
        settings=settings,
        trunk=trunk,
        name=worker_name,
        pool=open_pool(settings.database_url, min_size=1, max_size=limits.db_connections, name="worker",
                       wait=False),
        redis=redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5),
        agent=agent,
        health=state,
    )

    def on_change(is_open: bool) -> None:
        metrics.TRUNK_HEALTHY.labels(trunk.name).set(1 if is_open else 0)
        state.update(gate_open=is_open)
        if is_open:
            from worker.store import flag_trunk

            with runtime.pool.connection() as conn:
                flag_trunk(conn, trunk.name, healthy=True)

    state.update(gate_open=True)
    runtime.gate = RegistrationGate(
        # A trunk that does not REGISTER has nothing to re-register: the gate reopens after its backoff
        # and the next job tries again (a refused certificate consumes no job, see job_runner).
        agent.reregister if trunk.registers else _no_registration,
        stop_consuming=stop_consuming,
        resume_consuming=resume_consuming,
        on_change=on_change,
    )
    gate_box.append(runtime.gate)
    runtime.replay_spool_forever()
    _current = runtime
    return runtime


def stop(grace_s: float = 10.0) -> None:
    global _current
    if _current is not None:
        runtime, _current = _current, None
        runtime.close(grace_s)
