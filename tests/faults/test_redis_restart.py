"""A Redis restart mid-campaign: every queued message is lost, yet every job is dialled exactly once."""

from __future__ import annotations

import pytest

from tests.faults.rig import FaultRig, Plan
from tests.faults.scenarios import run_redis_restart

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]


def test_redis_restart_loses_messages_but_no_job_and_dials_nobody_twice(rig: FaultRig) -> None:
    """Redis is SIGKILLed and restarted empty while 100 jobs are being dialled.

    Pins: the dispatcher reconnects by itself (same process, still running)
    and the worker host keeps its two processes; the jobs whose messages died
    with Redis are sent again by the reaper's stuck-queued path and completed;
    no number is called twice; every INVITE is recorded.

    Not pinned: that each worker process survives. Now and then Celery's
    consumer dies on the reconnect (kombu's Redis channel, closed while a task
    thread acks, raises AttributeError 'NoneType' object has no attribute
    'hostname': "Unrecoverable error") and the process exits 0; the supervisor
    replaces it. The run prints how many were replaced.
    """
    result, facts = run_redis_restart(rig, Plan("redis", jobs=100), processes=2, restarts=1, down_s=1.0)
    assert facts.supervisor_alive and facts.dispatcher_alive and facts.dispatcher_pid_same
    print(f"    worker processes replaced after the restart: {facts.replaced}")
    assert len(facts.children_after) == 2
    assert facts.requeued >= 1, "messages lost with Redis were sent again by the reaper"
    assert result.duplicate_calls == 0, result.details
    assert result.lost_outcomes == 0, result.details
    completed = rig.query("SELECT count(*) FROM dial_jobs WHERE status = 'completed'")[0][0]
    assert completed == 100
