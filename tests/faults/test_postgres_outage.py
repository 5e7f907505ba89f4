"""Postgres stopped mid-campaign: live calls finish, their outcomes wait and are written when it returns."""

from __future__ import annotations

import time

import pytest

from tests.faults.rig import FaultRig, Plan, start_campaign, start_dispatchers
from tests.faults.scenarios import run_postgres_outage
from tests.support.fleet import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]


def test_postgres_outage_keeps_outcomes_and_takes_no_new_jobs(rig: FaultRig) -> None:
    """Postgres is stopped for 6 s while calls are live (the bench holds it down 20 s).

    Pins: the calls live at the stop end normally and their outcomes are
    written once Postgres is back (no job left ``dialing``); no INVITE starts
    while Postgres is away (nothing can be claimed); every job then completes;
    no number is called twice; nothing is lost.
    """
    result, facts = run_postgres_outage(rig, Plan("pgdown", jobs=80), processes=2, down_s=6.0)
    assert facts.live_at_stop, "the outage began with calls in progress"
    answered_live = rig.query(
        "SELECT count(DISTINCT job_id) FROM call_attempts WHERE job_id = ANY(%s) AND outcome = 'answered'",
        (facts.live_at_stop,))[0][0]
    assert answered_live == len(facts.live_at_stop), "calls live at the stop were recorded as they ended"
    assert facts.invites_during_outage == 0
    assert result.duplicate_calls == 0, result.details
    assert result.lost_outcomes == 0, result.details
    assert rig.query("SELECT count(*) FROM dial_jobs WHERE status = 'completed'")[0][0] == 80


def test_worker_started_while_postgres_is_down_works_once_it_is_back(rig: FaultRig) -> None:
    """A worker host boots while Postgres is down (compose starting everything at once) for 17 s.

    Pins: once Postgres is back, that worker dials the campaign's 5 jobs
    (each once); at no time does it run a dial task it cannot serve.
    """
    rig.pg.stop("fast")
    worker = rig.fleet.start_worker(1, name="workers")
    time.sleep(17.0)  # the fault: Postgres stays away while the worker starts (its pool waits 15 s)
    rig.pg.start()
    start_dispatchers(rig)
    campaign_id = start_campaign(rig, Plan("late-db", jobs=5))

    def done_or_failing() -> bool:
        return "raised unexpected" in worker.log_text() or rig.status_counts(campaign_id) == {"completed": 5}
    wait_until(done_or_failing, 90, "the jobs to complete (or a dial task to fail)")
    assert "raised unexpected" not in worker.log_text()
    assert rig.status_counts(campaign_id) == {"completed": 5}
    assert len(rig.peer.dialogs()) == 5
