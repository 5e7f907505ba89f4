"""SIGKILL of worker processes mid-call: nobody is called twice, nothing is lost, the pool heals."""

from __future__ import annotations

import pytest

from tests.faults.rig import FaultRig, Plan
from tests.faults.scenarios import run_sigkill

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]


def test_sigkilled_workers_cost_no_duplicate_call_and_no_outcome(rig: FaultRig) -> None:
    """Three SIGKILLs of busy worker children during a 120-job campaign (calls held 1 s).

    Pins: no number has two overlapping calls (sipp's dialogs, and per job in
    the CDR: an attempt starts only after the previous one ended or was
    reaped); every INVITE that reached the PBX has a CDR row or a
    ``worker_lost`` row; every job ends completed or failed; the supervisor
    replaced every killed child.
    """
    result, kills = run_sigkill(rig, Plan("kill", jobs=120), processes=3, kills=3)
    assert len(kills) == 3
    assert sum(len(k.jobs) for k in kills) >= 3, "every kill landed on a worker with live calls"
    assert result.duplicate_calls == 0, result.details
    assert result.lost_outcomes == 0, result.details
    lost_rows = rig.query("SELECT count(*) FROM call_attempts WHERE outcome = 'worker_lost'")[0][0]
    assert lost_rows == sum(len(k.jobs) for k in kills)
