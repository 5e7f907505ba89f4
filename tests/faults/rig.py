"""The stage of a fault test: a private Postgres and Redis, a sipp carrier, and a fleet of dialer processes.

Shared by the fault tests (small runs, asserted) and bench/bench_faults.py
(full-size runs, printed), so both inject the same faults into the same set-up.
Everything listens on 127.0.0.1 only; every process started here is stopped
when the ``fault_rig`` context ends, in reverse order of start.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg

from producer.campaigns import CampaignSpec, change_state, create_campaign
from producer.upload import ingest_bytes
from shared.outcomes import Outcome
from tests.support.fleet import Fleet, ManagedProcess, dialer_env, wait_until
from tests.support.private_services import PrivatePostgres, PrivateRedis, private_postgres, private_redis
from tests.support.sipp import DEFAULT_KEYS, SippPeer, start_sipp_uas

# An obviously fake secret, distinct from sipp's default, so a grep for it finds only our leaks.
PASSWORD = "fake-Pa55word-for-fault-tests-0000"
USERNAME = DEFAULT_KEYS["username"]
SETTLED = ("completed", "failed", "retry_wait", "cancelled", "skipped_dnc")


def fictional_numbers(count: int, start: int = 0) -> list[str]:
    """+86 139 000 xxxxx: a block kept for fiction in this project."""
    assert start + count <= 100_000
    return [f"+86139000{i:05d}" for i in range(start, start + count)]


@dataclass
class FaultRig:
    workdir: Path
    pg: PrivatePostgres
    redis: PrivateRedis
    peer: SippPeer
    fleet: Fleet
    database_url: str
    env: dict[str, str] = field(default_factory=dict)

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.database_url, autocommit=True, connect_timeout=5)

    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """One short-lived connection per query, so a test's view survives a Postgres restart."""
        with self.connect() as conn:
            return conn.execute(sql.encode(), params).fetchall()

    def wait_registered(self, count: int, timeout_s: float = 60.0) -> None:
        """Until ``count`` REGISTERs were answered 200 (each worker process registers once at start)."""
        def registered() -> bool:
            return sum(1 for m in self.peer.messages()
                       if m.direction == "tx" and m.status == 200 and m.cseq_method == "REGISTER") >= count
        wait_until(registered, timeout_s, f"{count} worker registrations", interval_s=0.5)

    def status_counts(self, campaign_id: int) -> dict[str, int]:
        rows = self.query("SELECT status, count(*) FROM dial_jobs WHERE campaign_id = %s GROUP BY status",
                          (campaign_id,))
        return {str(s): int(n) for s, n in rows}

    def wait_settled(self, campaign_id: int, timeout_s: float, statuses: Sequence[str] = SETTLED) -> float:
        """Until every job of the campaign is in one of ``statuses``; returns the seconds it took."""
        def settled() -> bool:
            try:
                counts = self.status_counts(campaign_id)
            except psycopg.OperationalError:
                return False
            return bool(counts) and all(s in statuses for s in counts)
        return wait_until(settled, timeout_s, f"campaign {campaign_id} settled", interval_s=0.5)


@dataclass(frozen=True)
class Plan:
    """A campaign for a fault run: short calls, so kills and outages land mid-call."""

    name: str
    jobs: int
    ring_timeout_s: float = 2.0
    hold_s: float = 1.0
    max_concurrent: int = 16
    cps: float = 20.0
    max_attempts: int = 3
    worker_lost_retry_s: float = 1.0
    first_number: int = 0


def start_campaign(rig: FaultRig, plan: Plan) -> int:
    """Create, upload and start a campaign through the producer's own functions; returns its id."""
    spec = CampaignSpec(
        name=plan.name, trunk="default", ring_timeout_s=plan.ring_timeout_s, hold_s=plan.hold_s,
        max_concurrent=plan.max_concurrent, cps=plan.cps, max_attempts=plan.max_attempts,
        retry_delays={Outcome.WORKER_LOST: timedelta(seconds=plan.worker_lost_retry_s),
                      Outcome.TRANSIENT: timedelta(seconds=2)},
    )
    csv = "phone,name\n" + "".join(f"{n},lead {i}\n" for i, n in
                                   enumerate(fictional_numbers(plan.jobs, plan.first_number)))
    with rig.connect() as conn:
        campaign_id = create_campaign(conn, spec)
        summary = ingest_bytes(conn, plan.name, csv.encode(), f"{plan.name}.csv", data_dir=rig.workdir / "data")
        assert summary.accepted == plan.jobs, summary
        change_state(conn, plan.name, "start")
    return campaign_id


@contextlib.contextmanager
def fault_rig(
    workdir: Path, *, scenario: str = "fault_hold", lease_grace_s: float = 1.0, trunk_max_concurrent: int = 16,
    trunk_max_cps: float = 20.0, sipp_timeout_s: float = 600.0, extra_env: Mapping[str, str] | None = None,
) -> Iterator[FaultRig]:
    """Private Postgres + Redis, sipp running ``scenario``, and an empty fleet pointed at them."""
    with contextlib.ExitStack() as stack:
        pg = stack.enter_context(private_postgres())
        redis = stack.enter_context(private_redis(workdir / "redis"))
        peer = start_sipp_uas(scenario, workdir / "sipp", keys={"username": USERNAME, "password": PASSWORD},
                              timeout_s=sipp_timeout_s)
        stack.callback(peer.stop)
        env = dialer_env(
            database_url=pg.url(), redis_url=redis.url(), registrar=peer.address, username=USERNAME,
            password=PASSWORD,
            extra={"DIALER_LEASE_GRACE_S": f"{lease_grace_s:g}", "DIALER_SIP_MAX_CONCURRENT": str(trunk_max_concurrent),
                   "DIALER_SIP_MAX_CPS": f"{trunk_max_cps:g}", "DIALER_DATA_DIR": str(workdir / "data"),
                   # The scenarios are sized on 4 calls per process (the wheel's): the same with either engine.
                   "DIALER_CALLS_PER_PROCESS": "4",
                   **(extra_env or {})},
        )
        fleet = Fleet(workdir / "fleet", env)
        stack.callback(fleet.stop, 5.0)
        yield FaultRig(workdir, pg, redis, peer, fleet, pg.url(), env)


def start_dispatchers(rig: FaultRig, count: int = 1, *, requeue_after_s: float = 5.0) -> list[ManagedProcess]:
    return [rig.fleet.start_dispatcher(name=f"dispatch{i}", interval_s=0.2,
                                       extra_args=["--requeue-after", f"{requeue_after_s:g}"])
            for i in range(count)]


def poll(action: Callable[[], bool], timeout_s: float, interval_s: float = 0.1) -> bool:
    """Call ``action`` until it returns True or time runs out; False on time-out (no exception)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if action():
            return True
        time.sleep(interval_s)
    return False
