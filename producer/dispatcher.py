"""The dispatcher: moves due jobs to ``queued`` and sends ``dial(job_id)``, within every limit.

One tick, per trunk that has an open campaign (running, trunk healthy, inside
its calling window and between start_at/end_at):

1. ``pg_try_advisory_xact_lock`` on the trunk. Concurrency caps are counts of
   queued+dialing jobs; two dispatchers counting at once would both see the
   same free slots, so one trunk is planned by one dispatcher at a time (the
   other skips it this tick). Several dispatchers still run for availability
   and split the trunks between them; job rows are taken ``FOR UPDATE SKIP
   LOCKED`` so nothing else (the reaper, a cancel) waits on them either.
2. Per campaign: up to the free capacity (campaign and trunk
   ``max_concurrent``), take the oldest due jobs, postpone numbers already
   called ``max_calls_per_number_per_day`` times in 24 h (to when the oldest
   of those calls leaves the 24 h), and take call starts from the shared pacer
   (campaign ``cps``, trunk ``max_cps`` x throttle factor, ``fleet_max_cps``).
3. Mark the granted jobs ``queued`` (``queued_at = now()``,
   ``due_at = next_attempt_at``) and COMMIT; only then send the messages. A
   message for a job not yet committed as queued would be dropped by the
   worker's claim; a crash between commit and send leaves the job queued for
   the reaper to re-send.

Every few seconds it also runs the housekeeping in :mod:`producer.reaper` and
refreshes the gauges (jobs by state with one GROUP BY, queue depths, open campaigns).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import redis
from celery import Celery

from producer import reaper
from producer.pacing import Pacer, TrunkThrottle, campaign_limit, fleet_limit, trunk_limit
from producer.reaper import ReaperConfig
from shared.job_states import Move, sources
from shared.metrics import CAMPAIGN_OPEN, DISPATCHED, JOBS, QUEUE_DEPTH, REQUEUED, WORKER_LOST
from shared.queue import dial_queue, enqueue_dial
from shared.schedule import CallingWindow
from shared.settings import DEFAULT_TRUNK, Settings, Trunk

log = logging.getLogger(__name__)

_LOCK_NAMESPACE = 0x5D1A  # pg advisory locks (int, int): this namespace, hashtext(trunk)
_NUMBER_LOCK_NAMESPACE = 0x5D1B  # (this namespace, hashtext(e164)): one dispatcher decides a number at a time


@dataclass(frozen=True, slots=True)
class TrunkLimits:
    max_concurrent: int
    max_cps: float


DEFAULT_TRUNK_LIMITS = TrunkLimits(
    int(Trunk.model_fields["max_concurrent"].default), float(Trunk.model_fields["max_cps"].default)
)


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    """Limits the dispatcher applies on top of each campaign's own columns.

    ``trunk_limits`` are the configured trunks; a trunk not named there takes
    its limits from its ``trunks`` table row, else :data:`DEFAULT_TRUNK_LIMITS`.
    """

    trunk_limits: Mapping[str, TrunkLimits] = field(default_factory=dict)
    fleet_max_cps: float = 200.0
    max_calls_per_number_per_day: int = 3
    batch_size: int = 1000
    housekeeping_every_s: float = 2.0
    jobs_gauge_every_s: float = 15.0
    reaper: ReaperConfig = field(default_factory=ReaperConfig)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> DispatchConfig:
        """Limits of the configured trunks, read without resolving their passwords.

        The dispatcher never registers, so it must not need the SIP secrets
        (``all_trunks()`` would demand them); it reads the same entries' limits.
        """
        limits = {entry.name: TrunkLimits(entry.max_concurrent, entry.max_cps) for entry in settings.trunks}
        if settings.sip_registrar:
            limits.setdefault(DEFAULT_TRUNK, TrunkLimits(settings.sip_max_concurrent, settings.sip_max_cps))
        values: dict[str, Any] = {
            "trunk_limits": limits, "fleet_max_cps": settings.fleet_max_cps,
            "max_calls_per_number_per_day": settings.max_calls_per_number_per_day,
            "reaper": ReaperConfig(lease_grace_s=settings.lease_grace_s),
        }
        return cls(**{**values, **overrides})


@dataclass(frozen=True, slots=True)
class OpenCampaign:
    id: int
    name: str
    trunk: str
    max_concurrent: int
    cps: float


@dataclass(slots=True)
class TickReport:
    dispatched: int = 0
    postponed: int = 0
    requeued: int = 0
    lost: int = 0
    finished: list[str] = field(default_factory=list)
    reopened: dict[str, int] = field(default_factory=dict)


@functools.lru_cache(maxsize=1024)
def _window(windows: str, days: str, tz: str) -> CallingWindow | None:
    try:
        return CallingWindow.parse(windows, days, tz)
    except ValueError as exc:
        log.error("calling window %r days %r tz %r is invalid, campaign not dialled: %s", windows, days, tz, exc)
        return None


_RUNNING = """
SELECT c.id, c.name, c.trunk, c.windows, c.days, c.tz, c.start_at, c.end_at, c.max_concurrent, c.cps,
       COALESCE(t.healthy, true), t.max_concurrent, t.max_cps
  FROM campaigns c LEFT JOIN trunks t ON t.name = c.trunk
 WHERE c.state = 'running'
"""
_IN_FLIGHT = """
SELECT j.campaign_id, count(*) FROM dial_jobs j JOIN campaigns c ON c.id = j.campaign_id
 WHERE c.trunk = %s AND j.status IN ('queued', 'dialing')
 GROUP BY j.campaign_id
"""
_DUE = """
SELECT id, e164 FROM dial_jobs
 WHERE campaign_id = %(campaign_id)s AND status IN ('pending', 'retry_wait') AND next_attempt_at <= now()
   AND EXISTS (SELECT 1 FROM campaigns WHERE id = %(campaign_id)s AND state = 'running')
 ORDER BY next_attempt_at
 LIMIT %(limit)s
   FOR UPDATE SKIP LOCKED
"""
# Calls per number in the last 24 h: recorded attempts (any campaign) plus attempts in flight.
_NUMBER_CALLS = """
SELECT e164, count(*), min(at) FROM (
    SELECT j.e164, min(COALESCE(a.invite_at, a.created_at)) AS at
      FROM dial_jobs j JOIN call_attempts a ON a.job_id = j.id
     WHERE j.e164 = ANY(%(numbers)s) AND COALESCE(a.invite_at, a.created_at) > now() - interval '24 hours'
     GROUP BY j.e164, a.job_id, a.attempt
    UNION ALL
    SELECT e164, now() FROM dial_jobs WHERE e164 = ANY(%(numbers)s) AND status IN ('queued', 'dialing')
) calls GROUP BY e164
"""
# Per-number locks make the daily cap hold across dispatchers planning different trunks: a number
# another dispatcher is deciding right now is skipped this tick (left due), never counted twice.
_LOCK_NUMBERS = """
SELECT n FROM unnest(%(numbers)s::text[]) AS n WHERE pg_try_advisory_xact_lock(%(ns)s, hashtext(n))
"""
_POSTPONE = """
UPDATE dial_jobs j SET next_attempt_at = v.at, updated_at = now()
  FROM unnest(%s::bigint[], %s::timestamptz[]) AS v(id, at) WHERE j.id = v.id
"""
_MARK_QUEUED = """
UPDATE dial_jobs SET status = 'queued', queued_at = now(), due_at = next_attempt_at, updated_at = now()
 WHERE id = ANY(%s) AND status = ANY(%s)
"""


class Dispatcher:
    """One dispatcher: ``tick()`` once, or ``run()`` until stopped. ``conn`` must be in autocommit."""

    def __init__(
        self, conn: psycopg.Connection[Any], app: Celery, client: redis.Redis, config: DispatchConfig
    ) -> None:
        self.conn = conn
        self.app = app
        self.redis = client
        self.config = config
        self.pacer = Pacer(client)
        self.throttle = TrunkThrottle(client)
        self._rotation = 0
        self._housekept_at = float("-inf")
        self._jobs_gauged_at = float("-inf")
        self._gauged_open: set[str] = set()
        self._gauged_jobs: set[tuple[str, str]] = set()
        self._queues: set[str] = {dial_queue(name) for name in config.trunk_limits}

    def tick(self, *, housekeeping: bool | None = None) -> TickReport:
        """Dispatch what is due now; run housekeeping when due (or when told to)."""
        report = TickReport()
        by_trunk, limits = self._open_campaigns(datetime.now(UTC))
        for trunk, campaigns in by_trunk.items():
            report.dispatched += self._dispatch_trunk(trunk, campaigns, limits[trunk], report)
        self._rotation += 1
        now = time.monotonic()
        if housekeeping or (housekeeping is None and now - self._housekept_at >= self.config.housekeeping_every_s):
            self._housekept_at = now
            self._housekeep(report)
        return report

    def _open_campaigns(
        self, now: datetime
    ) -> tuple[dict[str, list[OpenCampaign]], dict[str, TrunkLimits]]:
        by_trunk: dict[str, list[OpenCampaign]] = {}
        limits: dict[str, TrunkLimits] = {}
        seen: set[str] = set()
        for (cid, name, trunk, windows, days, tz, start_at, end_at, max_conc, cps,
             healthy, row_conc, row_cps) in self.conn.execute(_RUNNING).fetchall():
            if name not in self._gauged_open:
                # Start this campaign's counters at 0 so increase() sees its first loss or requeue.
                WORKER_LOST.labels(campaign=name).inc(0)
                REQUEUED.labels(campaign=name).inc(0)
                DISPATCHED.labels(campaign=name, trunk=trunk).inc(0)
            seen.add(name)
            self._queues.add(dial_queue(trunk))
            window = _window(windows, days, tz)
            is_open = healthy and window is not None and window.is_open(now, start_at, end_at)
            CAMPAIGN_OPEN.labels(campaign=name).set(1 if is_open else 0)
            if not is_open:
                continue
            by_trunk.setdefault(trunk, []).append(OpenCampaign(cid, name, trunk, max_conc, cps))
            limits[trunk] = self.config.trunk_limits.get(trunk) or (
                TrunkLimits(row_conc, row_cps) if row_conc is not None else DEFAULT_TRUNK_LIMITS
            )
        for name in self._gauged_open - seen:
            CAMPAIGN_OPEN.labels(campaign=name).set(0)
        self._gauged_open = seen
        return by_trunk, limits

    def _dispatch_trunk(
        self, trunk: str, campaigns: list[OpenCampaign], limits: TrunkLimits, report: TickReport
    ) -> int:
        start = self._rotation % len(campaigns)  # rotate who goes first, so no campaign starves the others
        ordered = campaigns[start:] + campaigns[:start]
        trunk_cps = limits.max_cps * self.throttle.factor(trunk)
        to_send: list[tuple[int, OpenCampaign]] = []
        with self.conn.transaction():
            locked = self.conn.execute(
                "SELECT pg_try_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_NAMESPACE, trunk)
            ).fetchone()
            if not locked or not locked[0]:
                return 0  # another dispatcher is planning this trunk right now
            in_flight = dict(self.conn.execute(_IN_FLIGHT, (trunk,)).fetchall())
            trunk_free = limits.max_concurrent - sum(in_flight.values())
            pace_room = min(self.pacer.burst(trunk_cps), self.pacer.burst(self.config.fleet_max_cps),
                            self.config.batch_size)
            for campaign in ordered:
                free = min(campaign.max_concurrent - in_flight.get(campaign.id, 0), trunk_free,
                           self.pacer.burst(campaign.cps), pace_room)
                if free <= 0:
                    continue
                rows = self.conn.execute(_DUE, {"campaign_id": campaign.id, "limit": free}).fetchall()
                if not rows:
                    continue
                allowed = self._apply_number_cap(rows, report)
                granted = self.pacer.take(len(allowed), [
                    campaign_limit(campaign.id, campaign.cps), trunk_limit(trunk, trunk_cps),
                    fleet_limit(self.config.fleet_max_cps),
                ])
                chosen = allowed[:granted]
                if chosen:
                    self.conn.execute(_MARK_QUEUED, (chosen, sources(Move.DISPATCH)))
                    trunk_free -= len(chosen)
                    to_send += [(job_id, campaign) for job_id in chosen]
        return self._send(to_send)

    def _apply_number_cap(self, rows: Sequence[tuple[int, str]], report: TickReport) -> list[int]:
        """Job ids whose number may be called once more today; postpones the others."""
        cap = self.config.max_calls_per_number_per_day
        wanted = sorted({e164 for _id, e164 in rows})
        numbers = [n for (n,) in self.conn.execute(_LOCK_NUMBERS, {"numbers": wanted, "ns": _NUMBER_LOCK_NAMESPACE})]
        mine = set(numbers)
        rows = [(job_id, e164) for job_id, e164 in rows if e164 in mine]
        calls: dict[str, int] = {}
        oldest: dict[str, datetime] = {}
        for e164, count, first in self.conn.execute(_NUMBER_CALLS, {"numbers": numbers}):
            calls[e164], oldest[e164] = count, first
        allowed: list[int] = []
        postponed: list[tuple[int, datetime]] = []
        for job_id, e164 in rows:
            if calls.get(e164, 0) >= cap:
                postponed.append((job_id, oldest[e164] + timedelta(days=1)))
            else:
                calls[e164] = calls.get(e164, 0) + 1
                allowed.append(job_id)
        if postponed:
            self.conn.execute(_POSTPONE, ([p[0] for p in postponed], [p[1] for p in postponed]))
            report.postponed += len(postponed)
            log.info("postponed %d jobs: their numbers reached %d calls in 24 h", len(postponed), cap)
        return allowed

    def _send(self, to_send: Sequence[tuple[int, OpenCampaign]]) -> int:
        """Send after commit. A failure leaves the rest queued; the reaper re-sends them later."""
        sent: Counter[tuple[str, str]] = Counter()
        try:
            with self.app.producer_or_acquire() as producer:
                for job_id, campaign in to_send:
                    enqueue_dial(self.app, job_id, campaign.trunk, producer)
                    sent[(campaign.name, campaign.trunk)] += 1
        except Exception:  # kombu's errors vary by transport; whatever it is, the reaper recovers
            log.exception("sending dial messages failed after %d of %d; the reaper will re-send the rest",
                          sum(sent.values()), len(to_send))
        for (name, trunk), count in sent.items():
            DISPATCHED.labels(campaign=name, trunk=trunk).inc(count)
        return sum(sent.values())

    def _housekeep(self, report: TickReport) -> None:
        cfg = self.config.reaper
        report.lost = len(reaper.reap_lost(self.conn, cfg))
        report.requeued = reaper.requeue_stale(self.conn, self.app, self.redis, cfg)
        report.reopened = reaper.reopen_recurring(self.conn, datetime.now(UTC))
        report.finished = reaper.finish_campaigns(self.conn)
        self._gauge_queues()
        if time.monotonic() - self._jobs_gauged_at >= self.config.jobs_gauge_every_s:
            self._jobs_gauged_at = time.monotonic()
            self._gauge_jobs()

    def _gauge_queues(self) -> None:
        """LLEN of each trunk queue: kombu's Redis transport keeps a queue as a list of that name."""
        queues = sorted(self._queues)
        pipe = self.redis.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(queue)
        for queue, depth in zip(queues, pipe.execute(), strict=True):
            QUEUE_DEPTH.labels(queue=queue).set(depth)

    def _gauge_jobs(self) -> None:
        """Jobs by campaign and state: one GROUP BY over the (campaign_id, status) index."""
        names = dict(self.conn.execute("SELECT id, name FROM campaigns").fetchall())
        seen: set[tuple[str, str]] = set()
        for campaign_id, status, count in self.conn.execute(
            "SELECT campaign_id, status, count(*) FROM dial_jobs GROUP BY campaign_id, status"
        ):
            key = (names.get(campaign_id, str(campaign_id)), status)
            JOBS.labels(campaign=key[0], state=status).set(count)
            seen.add(key)
        for name, status in self._gauged_jobs - seen:
            JOBS.labels(campaign=name, state=status).set(0)
        self._gauged_jobs = seen

    def run(self, stop: threading.Event, interval: float = 0.2) -> None:
        """Tick until ``stop`` is set; a tick that sent something ticks again at once, an idle one waits.

        Waiting after a busy tick would add ``interval`` to the dispatch lag of
        every job that fell due meanwhile; an idle tick means nothing is due,
        or every limit is reached, and a tick soon after would find the same.
        """
        while not stop.is_set():
            if self.tick().dispatched == 0:
                stop.wait(interval)


def run_forever(
    connect: Callable[[], psycopg.Connection[Any]], app: Celery, client: redis.Redis, config: DispatchConfig,
    stop: threading.Event, interval: float = 0.2,
) -> None:
    """Run a dispatcher, reconnecting to Postgres with backoff when the connection drops."""
    delay = 1.0
    while not stop.is_set():
        try:
            with connect() as conn:
                delay = 1.0
                Dispatcher(conn, app, client, config).run(stop, interval)
        except (psycopg.OperationalError, redis.ConnectionError) as exc:
            log.error("dispatcher lost a service (%s); retrying in %.0fs", type(exc).__name__, delay)
            stop.wait(delay)
            delay = min(delay * 2, 30.0)
