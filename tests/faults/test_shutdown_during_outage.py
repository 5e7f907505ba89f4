"""SIGTERM of a worker host while Postgres is down: finished calls are spooled, then written, never lost."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.faults.conftest import RigFactory
from tests.faults.rig import Plan, start_campaign, start_dispatchers
from tests.faults.scenarios import _dialing_by_pid
from tests.support.fleet import wait_until
from worker import spool

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]


def test_sigterm_during_a_postgres_outage_records_every_answered_call_once_postgres_is_back(
    rig_factory: RigFactory,
) -> None:
    """Postgres stops while every call slot holds a 3 s call; then the worker host gets SIGTERM (grace 20 s).

    Pins: the supervisor exits 0 within grace + its 15 s margin (nobody is
    killed while waiting for Postgres); each call live at the stop was
    answered (sipp's view) and its outcome sits in the host's spool; once
    Postgres is back, the next worker started on the host writes them: each of
    those jobs is completed with exactly one CDR row, answered, and no attempt
    anywhere is worker_lost.
    """
    rig = rig_factory(scenario="answer_fast")
    supervisor = rig.fleet.start_worker(1, name="workers", shutdown_grace_s=20.0)
    start_dispatchers(rig)
    rig.wait_registered(1)
    campaign_id = start_campaign(rig, Plan("term-pgdown", jobs=12, hold_s=3.0))
    live: list[int] = []

    def all_slots_busy() -> bool:
        live[:] = [job for jobs in _dialing_by_pid(rig, campaign_id).values() for job in jobs]
        return len(live) >= 4 and sum(1 for d in rig.peer.dialogs() if d.answered) >= 4
    wait_until(all_slots_busy, 60, "calls in progress on every slot", interval_s=0.05)
    rig.pg.stop("fast")
    supervisor.signal(signal.SIGTERM)
    assert supervisor.wait(20.0 + 15.0) == 0
    folder = spool.spool_dir(Path(rig.env["DIALER_DATA_DIR"]))
    spooled = spool.pending(folder)
    assert len(spooled) >= 4, spooled

    rig.pg.start()
    rig.fleet.start_worker(1, name="workers-again")
    wait_until(lambda: not spool.pending(folder), 60, "the spooled outcomes to be written")
    rows = rig.query("SELECT j.id, j.status, j.outcome, array_agg(a.outcome) FROM dial_jobs j"
                     " JOIN call_attempts a ON a.job_id = j.id WHERE j.id = ANY(%s) GROUP BY j.id", (live,))
    assert len(rows) == len(live), rows
    for job_id, status, outcome, outcomes in rows:
        assert (status, outcome, outcomes) == ("completed", "answered", ["answered"]), job_id
    assert rig.query("SELECT count(*) FROM call_attempts WHERE outcome = 'worker_lost'")[0][0] == 0
