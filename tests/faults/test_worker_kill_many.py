"""SIGKILL of one worker process holding 100+ live calls (the built engine): each one reaped, none redialled early."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.faults.conftest import RigFactory
from tests.faults.rig import FaultRig, Plan, start_campaign, start_dispatchers
from tests.faults.scenarios import _dialing_by_pid, _finish
from tests.support.fleet import wait_until
from tests.support.needs import unavailable
from worker.sip.engine import loaded

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(420)]

CALLS = 120


def test_a_sigkilled_process_with_over_100_live_calls_loses_none_and_redials_none_early(
    rig_factory: RigFactory,
) -> None:
    """One process holds 100+ answered calls when it is SIGKILLed.

    Pins: the reaper records every one of its jobs as ``worker_lost``; no job
    is dialled again before the lease it held at the kill has run out (so a
    call that might still be up is never doubled); the campaign then settles
    with 0 duplicate calls and 0 lost outcomes by sipp's trace and the CDR.
    """
    if loaded().kind != "built":
        unavailable("needs the built engine (100+ calls in one process); scripts/test runs the fault suite so")
    rig: FaultRig = rig_factory(trunk_max_concurrent=CALLS + 10, trunk_max_cps=200.0,
                                extra_env={"DIALER_CALLS_PER_PROCESS": str(CALLS + 10)})
    supervisor = rig.fleet.start_worker(1, name="workers", shutdown_grace_s=5.0)
    start_dispatchers(rig)
    rig.wait_registered(1)
    # fault_hold waits 10 s for our BYE: calls held 8 s are all up at once at this pace.
    plan = Plan("kill-many", jobs=CALLS, hold_s=8.0, max_concurrent=CALLS + 10, cps=100.0)
    campaign_id = start_campaign(rig, plan)
    [pid] = supervisor.children()

    def many_live() -> bool:
        return len(_dialing_by_pid(rig, campaign_id).get(pid, [])) >= 100

    wait_until(many_live, 120, "100 live calls in the worker process", interval_s=0.05)
    os.kill(pid, signal.SIGKILL)
    killed_at = time.time()
    leases = dict(rig.query("SELECT id, lease_until FROM dial_jobs WHERE status = 'dialing' AND worker LIKE %s",
                            (f"%:{pid}",)))
    assert len(leases) >= 100
    print(f"    killed worker pid {pid} holding {len(leases)} live calls")

    def all_reaped() -> bool:
        rows = rig.query("SELECT count(DISTINCT job_id) FROM call_attempts WHERE outcome = 'worker_lost'"
                         " AND job_id = ANY(%s)", (list(leases),))
        return rows[0][0] == len(leases)

    wait_until(all_reaped, 240, f"the reaper to record the {len(leases)} jobs of pid {pid}", interval_s=0.5)
    rig.wait_settled(campaign_id, 240, statuses=("completed", "failed"))
    early = rig.query(
        "SELECT a.job_id, a.invite_at FROM call_attempts a JOIN dial_jobs j ON j.id = a.job_id"
        " WHERE a.job_id = ANY(%s) AND a.outcome <> 'worker_lost' AND a.invite_at > to_timestamp(%s)",
        (list(leases), killed_at),
    )
    redialled_early = [(job, at) for job, at in early if at < leases[job]]
    assert redialled_early == []
    result = _finish(rig, [campaign_id], scenario="sigkill-many", faults=1, recover_s=None)
    assert result.duplicate_calls == 0, result.details
    assert result.lost_outcomes == 0, result.details
