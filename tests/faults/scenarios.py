"""Fault runs: a campaign through the real fleet while one thing breaks; each returns a :class:`Tally`.

The tests run them small and assert on the tally; bench/bench_faults.py runs
them full size and prints it. Each run waits on conditions (bounded polling),
never on fixed sleeps, except the outage itself (a stopped Postgres stays
stopped for ``down_s``: that is the fault).
"""

from __future__ import annotations

import os
import re
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime

import redis

from tests.faults.checks import SETTLED, Tally, tally
from tests.faults.rig import FaultRig, Plan, start_campaign, start_dispatchers
from tests.support.fleet import ManagedProcess, wait_until

FINAL = ("completed", "failed")
_RESENT = re.compile(r"re-sent (\d+) dial messages")


def _completed(rig: FaultRig, campaign_id: int) -> int:
    counts = rig.status_counts(campaign_id)
    return counts.get("completed", 0) + counts.get("failed", 0)


def _dialing_by_pid(rig: FaultRig, campaign_id: int) -> dict[int, list[int]]:
    """Jobs in ``dialing`` by the pid in their worker name (``dialer0-default@host:PID``)."""
    found: dict[int, list[int]] = {}
    for job_id, worker in rig.query(
        "SELECT id, worker FROM dial_jobs WHERE campaign_id = %s AND status = 'dialing'", (campaign_id,)
    ):
        pid = str(worker).rsplit(":", 1)[-1]
        if pid.isdigit():
            found.setdefault(int(pid), []).append(int(job_id))
    return found


def _finish(rig: FaultRig, campaign_ids: list[int], *, scenario: str, faults: int, recover_s: float | None) -> Tally:
    """Stop the fleet (nothing may change while we count), then compare sipp's view with Postgres."""
    rig.fleet.stop(grace_s=30.0)
    with rig.connect() as conn:
        result = tally(conn, rig.peer.dialogs(), campaign_ids, scenario=scenario, faults=faults, recover_s=recover_s)
    print(result.line())
    for detail in result.details[:20]:
        print("   ", detail)
    return result


# ------------------------------------------------------------------------------------------------ SIGKILL

@dataclass
class KillRecord:
    pid: int
    at_wall: float  # time.time() of the SIGKILL
    jobs: list[int] = field(default_factory=list)


def run_sigkill(rig: FaultRig, plan: Plan, *, processes: int = 3, kills: int = 3,
                settle_timeout_s: float = 240.0) -> tuple[Tally, list[KillRecord]]:
    """SIGKILL worker children mid-call, spread over the campaign; the supervisor replaces them."""
    supervisor = rig.fleet.start_worker(processes, name="workers", shutdown_grace_s=5.0)
    start_dispatchers(rig)
    rig.wait_registered(processes)
    campaign_id = start_campaign(rig, plan)
    records: list[KillRecord] = []
    for k in range(kills):
        # Spread the kills: the k-th lands once a k/(kills+1) share of the campaign is done.
        wait_until(lambda k=k: _completed(rig, campaign_id) >= plan.jobs * k // (kills + 1), max(120, plan.jobs),
                   f"progress before kill {k + 1}")
        records.append(_kill_a_busy_child(rig, supervisor, campaign_id, processes))
    recover = 0.0
    for record in records:
        def reaped(record: KillRecord = record) -> bool:
            rows = rig.query("SELECT count(DISTINCT job_id) FROM call_attempts"
                             " WHERE outcome = 'worker_lost' AND job_id = ANY(%s)", (record.jobs,))
            return rows[0][0] == len(record.jobs)
        wait_until(reaped, settle_timeout_s, f"reaper to record the jobs of killed pid {record.pid}", 0.5)
        # Recovery of a kill: until the reaper had recorded the last of its jobs (the reaper's own clock).
        [(last,)] = rig.query("SELECT extract(epoch FROM max(end_at)) FROM call_attempts"
                              " WHERE outcome = 'worker_lost' AND job_id = ANY(%s)", (record.jobs,))
        recover = max(recover, float(last or record.at_wall) - record.at_wall)
    rig.wait_settled(campaign_id, settle_timeout_s, statuses=FINAL)
    return _finish(rig, [campaign_id], scenario="sigkill", faults=len(records), recover_s=recover), records


def _kill_a_busy_child(rig: FaultRig, supervisor: ManagedProcess, campaign_id: int, processes: int) -> KillRecord:
    """SIGKILL the child with the most live calls, then wait until the supervisor has replaced it."""
    chosen: list[tuple[int, list[int]]] = []

    def busy_child() -> bool:
        children = set(supervisor.children())
        busy = [(pid, jobs) for pid, jobs in _dialing_by_pid(rig, campaign_id).items() if pid in children]
        if busy:
            chosen.append(max(busy, key=lambda item: len(item[1])))
        return bool(busy)

    wait_until(busy_child, 60, "a worker child with live calls", interval_s=0.05)
    pid, _ = chosen[-1]
    os.kill(pid, signal.SIGKILL)
    at = time.time()
    jobs = _dialing_by_pid(rig, campaign_id).get(pid, [])  # read after the kill: nothing can change it now
    wait_until(lambda: pid not in supervisor.children() and len(supervisor.children()) == processes, 60,
               f"the supervisor to replace killed pid {pid}")
    print(f"    killed worker pid {pid} holding jobs {jobs}")
    return KillRecord(pid, at, jobs)


# ------------------------------------------------------------------------------------------ Redis restart

@dataclass
class RedisFacts:
    children_before: list[int]
    children_after: list[int]
    supervisor_alive: bool
    dispatcher_alive: bool
    dispatcher_pid_same: bool
    requeued: int

    @property
    def replaced(self) -> int:
        """Worker processes that died and were replaced by the supervisor."""
        return len(set(self.children_before) - set(self.children_after))


def run_redis_restart(rig: FaultRig, plan: Plan, *, processes: int = 2, restarts: int = 1, down_s: float = 1.0,
                      settle_timeout_s: float = 180.0) -> tuple[Tally, RedisFacts]:
    """Kill Redis (every queued message with it) and bring it back empty, mid-campaign."""
    supervisor = rig.fleet.start_worker(processes, name="workers", shutdown_grace_s=5.0)
    [dispatcher] = start_dispatchers(rig)
    dispatcher_pid = dispatcher.pid
    rig.wait_registered(processes)
    children_before = supervisor.children()
    campaign_id = start_campaign(rig, plan)
    recover = 0.0
    for r in range(restarts):
        wait_until(lambda r=r: _completed(rig, campaign_id) >= plan.jobs * (r + 1) // (restarts + 2),
                   max(120, plan.jobs), f"progress before Redis restart {r + 1}")
        # Kill it while dial messages wait in the queue, so some die with it (the reaper's path is exercised).
        wait_until(lambda: _queue_depth(rig) > 0, 60, "dial messages waiting in Redis", interval_s=0.02)
        rig.redis.restart(down_s)
        back = datetime.now().astimezone()
        up_at = time.monotonic()
        # Recovered once a call placed after the restart has been recorded: dispatch, queue, worker all work.
        wait_until(lambda back=back: rig.query("SELECT count(*) FROM call_attempts WHERE campaign_id = %s"
                                               " AND invite_at > %s", (campaign_id, back))[0][0] > 0,
                   settle_timeout_s, "a call placed and recorded after the Redis restart", 0.5)
        recover = max(recover, time.monotonic() - up_at)
    rig.wait_settled(campaign_id, settle_timeout_s, statuses=FINAL)
    facts = RedisFacts(children_before, supervisor.children(), supervisor.alive, dispatcher.alive,
                       dispatcher.pid == dispatcher_pid, _requeued_from_logs(rig))
    return _finish(rig, [campaign_id], scenario="redis_restart", faults=restarts, recover_s=recover), facts


def _queue_depth(rig: FaultRig, queue: str = "dial.default") -> int:
    client = redis.Redis.from_url(rig.redis.url(), socket_timeout=2)
    try:
        return int(client.llen(queue))
    except redis.RedisError:
        return 0
    finally:
        client.close()


def _requeued_from_logs(rig: FaultRig) -> int:
    """Dial messages the dispatchers' reaper re-sent, from their own log lines ("re-sent N dial messages")."""
    total = 0
    for handle in rig.fleet.processes:
        for match in _RESENT.finditer(handle.log_text()):
            total += int(match.group(1))
    return total


# --------------------------------------------------------------------------------------- Postgres outage

@dataclass
class OutageFacts:
    live_at_stop: list[int]
    invites_during_outage: int
    recover_s: float


def run_postgres_outage(rig: FaultRig, plan: Plan, *, processes: int = 2, down_s: float = 8.0,
                        settle_timeout_s: float = 180.0) -> tuple[Tally, OutageFacts]:
    """Stop Postgres mid-campaign with calls live, keep it down ``down_s``, start it again."""
    rig.fleet.start_worker(processes, name="workers", shutdown_grace_s=5.0)
    start_dispatchers(rig)
    rig.wait_registered(processes)
    campaign_id = start_campaign(rig, plan)
    wait_until(lambda: _completed(rig, campaign_id) >= plan.jobs // 3, max(120, plan.jobs),
               "progress before the outage")
    live: list[int] = []

    def calls_live() -> bool:
        live[:] = [job for jobs in _dialing_by_pid(rig, campaign_id).values() for job in jobs]
        return len(live) >= 2
    wait_until(calls_live, 60, "calls in progress", interval_s=0.05)
    rig.pg.stop("fast")
    stopped = datetime.now().astimezone()
    time.sleep(down_s)  # the fault: Postgres stays away this long
    rig.pg.start()
    back = datetime.now().astimezone()
    up_at = time.monotonic()

    def held_written() -> bool:
        rows = rig.query("SELECT count(*) FROM dial_jobs WHERE id = ANY(%s) AND status = 'dialing'", (live,))
        return rows[0][0] == 0
    wait_until(held_written, settle_timeout_s, "the outcomes held through the outage to be written", 0.5)
    recover = time.monotonic() - up_at
    rig.wait_settled(campaign_id, settle_timeout_s, statuses=FINAL)
    # Calls handed to the SIP agent just before the stop may start a moment after it; later ones may not.
    margin = 1.0
    during = [d for d in rig.peer.dialogs()
              if stopped.timestamp() + margin < d.started_at.timestamp() < back.timestamp()]
    facts = OutageFacts(live, len(during), recover)
    result = _finish(rig, [campaign_id], scenario=f"postgres_down_{down_s:g}s", faults=1, recover_s=recover)
    return result, facts


# ------------------------------------------------------------------------------------------------ SIGTERM

@dataclass
class TermFacts:
    exit_code: int | None
    live_at_term: list[int]
    invites_after_term: int
    exit_s: float


def run_sigterm(rig: FaultRig, plan: Plan, *, processes: int = 2, shutdown_grace_s: float = 2.0,
                exit_timeout_s: float = 90.0) -> tuple[Tally, TermFacts]:
    """SIGTERM the worker supervisor while calls are live; it must drain, record and exit 0."""
    supervisor = rig.fleet.start_worker(processes, name="workers", shutdown_grace_s=shutdown_grace_s)
    start_dispatchers(rig)
    rig.wait_registered(processes)
    campaign_id = start_campaign(rig, plan)
    live: list[int] = []

    def all_slots_busy() -> bool:
        # Claimed is not yet live: wait until every slot's INVITE has been answered at sipp.
        live[:] = [job for jobs in _dialing_by_pid(rig, campaign_id).values() for job in jobs]
        answered = sum(1 for d in rig.peer.dialogs() if d.answered)
        return len(live) >= processes * 4 and answered >= processes * 4
    wait_until(all_slots_busy, 60, "calls in progress on every worker", interval_s=0.05)
    supervisor.signal(signal.SIGTERM)
    termed = time.time()
    started = time.monotonic()
    try:
        code: int | None = supervisor.wait(exit_timeout_s)
    except Exception:  # still running: the fleet teardown kills it; the facts say so
        code = None
    exit_s = time.monotonic() - started
    after = [d for d in rig.peer.dialogs() if d.started_at.timestamp() > termed + 1.0]
    facts = TermFacts(code, live, len(after), exit_s)
    rig.fleet.stop(grace_s=5.0)  # the dispatcher too, before counting
    # Jobs no worker took before the stop stay queued or pending: that is correct, not lost.
    with rig.connect() as conn:
        result = tally(conn, rig.peer.dialogs(), [campaign_id], scenario="sigterm", faults=1, recover_s=exit_s,
                       settled=SETTLED | {"queued", "pending"})
    print(result.line())
    for detail in result.details[:20]:
        print("   ", detail)
    return result, facts


# ------------------------------------------------------------------------------------------------ scale-out

@dataclass
class FleetFacts:
    max_concurrent_seen: int
    max_starts_in_window: int
    window_s: float
    calls_per_s: float
    dialled_numbers: int


def sip_load(rig: FaultRig, window_s: float) -> tuple[int, int, float, int]:
    """From sipp's dialogs: peak concurrent dialogs, most starts in any ``window_s``, calls/s, numbers dialled."""
    dialogs = rig.peer.dialogs()
    if not dialogs:
        return 0, 0, 0.0, 0
    events = sorted([(d.started_at.timestamp(), 1) for d in dialogs] + [(d.ended_at.timestamp(), -1) for d in dialogs])
    live = peak = 0
    for _, step in events:  # an end at the same instant as a start counts first (-1 sorts before 1)
        live += step
        peak = max(peak, live)
    starts = sorted(d.started_at.timestamp() for d in dialogs)
    most, lo = 0, 0
    for hi, at in enumerate(starts):
        while at - starts[lo] >= window_s:
            lo += 1
        most = max(most, hi - lo + 1)
    span = max(d.ended_at.timestamp() for d in dialogs) - starts[0]
    return peak, most, len(dialogs) / span if span > 0 else 0.0, len({d.user for d in dialogs})


def run_scale_out(rig: FaultRig, plan: Plan, *, workers: int = 3, dispatchers: int = 2, window_s: float = 5.0,
                  settle_timeout_s: float = 240.0) -> tuple[Tally, FleetFacts]:
    """``workers`` supervisors of one process each (as on that many hosts) and ``dispatchers`` dispatchers."""
    for index in range(workers):
        rig.fleet.start_worker(1, name=f"host{index}", shutdown_grace_s=5.0)
    start_dispatchers(rig, dispatchers)
    rig.wait_registered(workers)
    campaign_id = start_campaign(rig, plan)
    rig.wait_settled(campaign_id, settle_timeout_s, statuses=FINAL)
    result = _finish(rig, [campaign_id], scenario=f"scale_out_{workers}w_{dispatchers}d", faults=0, recover_s=None)
    peak, most, rate, numbers = sip_load(rig, window_s)
    facts = FleetFacts(peak, most, window_s, rate, numbers)
    print(f"    fleet: peak concurrent {peak}, most starts in {window_s:g}s {most}, {rate:.2f} calls/s")
    return result, facts
