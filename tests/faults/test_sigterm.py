"""SIGTERM of a worker host: stop taking jobs, let live calls end up to a bound, record them, exit 0."""

from __future__ import annotations

import pytest

from tests.faults.conftest import RigFactory
from tests.faults.rig import Plan
from tests.faults.scenarios import run_sigterm

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]


def test_sigterm_lets_live_calls_finish_records_them_and_exits_0(rig_factory: RigFactory) -> None:
    """SIGTERM while every call slot holds a 3 s call and the grace is 20 s.

    Pins: the supervisor exits 0; no INVITE starts after the signal (the
    workers stop taking jobs); each call live at the signal ends normally and
    is recorded answered; no job is left ``dialing``; jobs not yet taken stay
    queued for another worker.
    """
    rig = rig_factory(scenario="answer_fast")
    result, facts = run_sigterm(rig, Plan("term", jobs=12, hold_s=3.0), processes=1, shutdown_grace_s=20.0)
    assert facts.exit_code == 0
    assert facts.invites_after_term == 0
    assert result.duplicate_calls == 0, result.details
    assert result.lost_outcomes == 0, result.details
    assert rig.query("SELECT count(*) FROM dial_jobs WHERE status = 'dialing'")[0][0] == 0
    # A job claimed at the signal whose INVITE had not left yet is handed back untouched (attempt not
    # counted); every other is a call that ended normally and was recorded.
    states = rig.query(
        "SELECT j.id, j.status, j.attempts, array_remove(array_agg(a.outcome), NULL) FROM dial_jobs j"
        " LEFT JOIN call_attempts a ON a.job_id = j.id WHERE j.id = ANY(%s) GROUP BY j.id", (facts.live_at_term,))
    for job_id, status, attempts, outcomes in states:
        assert outcomes == ["answered"] or (outcomes == [] and status in ("pending", "retry_wait")
                                            and attempts == 0), (job_id, status, attempts, outcomes)
    assert sum(1 for *_, outcomes in states if outcomes == ["answered"]) >= 1
    assert rig.query("SELECT count(*) FROM dial_jobs WHERE status IN ('queued', 'pending')")[0][0] > 0


def test_sigterm_hangs_up_calls_longer_than_the_grace_and_records_them(rig_factory: RigFactory) -> None:
    """SIGTERM with `--shutdown-grace 2` while every slot holds a call meant to last 30 s (the peer never hangs up).

    Pins the bound: each call live at the signal is hung up by the worker once
    the grace is over (hung up locally, talk time under the 30 s hold) and
    recorded answered; no job is left ``dialing``; the supervisor exits 0.
    """
    rig = rig_factory(scenario="answer_fast")
    result, facts = run_sigterm(rig, Plan("term_bound", jobs=8, hold_s=30.0), processes=1, shutdown_grace_s=2.0)
    assert facts.exit_code == 0
    assert facts.invites_after_term == 0
    assert result.lost_outcomes == 0, result.details
    assert result.duplicate_calls == 0, result.details
    rows = rig.query("SELECT outcome, hangup_by, duration_s FROM call_attempts WHERE job_id = ANY(%s)",
                     (facts.live_at_term,))
    assert len(rows) == len(facts.live_at_term)
    assert all(outcome == "answered" and hangup == "local" and duration < 30.0 for outcome, hangup, duration in rows)
