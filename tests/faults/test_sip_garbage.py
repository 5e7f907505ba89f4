"""A SIP peer that answers nonsense: the worker survives, classifies what it can, and records every INVITE.

In-process (``run_dial_job`` with a started worker runtime, as tests/integration
does) against sipp's ``fault_garbage`` carrier, which picks its nonsense by the
last two digits of the number dialled (see tests/sipp/fault_garbage.xml).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from shared.settings import load_settings
from tests.faults.rig import PASSWORD, USERNAME
from tests.support.factories import add_jobs, create_campaign
from tests.support.sipp import SippPeer
from worker import runtime
from worker.job_runner import run_dial_job
from worker.runtime import WorkerRuntime

pytestmark = [pytest.mark.integration]

# case -> (outcome the job reports, SIP codes recorded for its tries, job status)
EXPECTED = {
    "01": ("failed", [499], "failed"),               # an unassigned 4xx: final, code kept, not retried
    "02": ("failed", [699], "failed"),               # an unassigned 6xx
    "03": ("failed", [555], "failed"),               # an unassigned 5xx is not one of the transient four
    "04": ("answered", [200], "completed"),          # 200 without SDP: the callee did pick up
    "05": ("busy", [486], "retry_wait"),             # malformed messages are dropped; the 486 after them counts
    "06": ("transient", [487, 487, 487], "retry_wait"),  # unparsable early SDP: we CANCEL, back off, reschedule
    "07": ("answered", [200], "completed"),          # 200 whose SDP has no media line
    "09": ("answered", [200], "completed"),          # a sane call afterwards: the agent still works
}
REDIRECT_TARGET = "13900009999"


@pytest.fixture
def garbage_runtime(database_url: str, redis_url: str, redis_client: Any, sipp_uas: Any) -> Iterator[
        tuple[WorkerRuntime, SippPeer]]:
    peer = sipp_uas("fault_garbage", keys={"username": USERNAME, "password": PASSWORD})
    settings = load_settings(database_url=database_url, redis_url=redis_url, sip_registrar=peer.address,
                             sip_username=USERNAME, sip_password=PASSWORD)
    rt = runtime.start(settings, None, name="garbage-worker", register_attempts=1)
    yield rt, peer
    runtime.stop(grace_s=2)


def _queue(db: psycopg.Connection[Any], cases: list[str]) -> dict[str, int]:
    campaign = create_campaign(db, name="garbage", ring_timeout_s=3, hold_s=0.2,
                               retry_delays={"busy": 600, "transient": 600})
    ids = add_jobs(db, campaign, [f"+86139000000{case}" for case in cases], status="queued")
    return dict(zip(cases, ids, strict=True))


def _tries(db: psycopg.Connection[Any], job_id: int) -> list[tuple[Any, ...]]:
    return db.execute("SELECT status_code, outcome, sip_call_id FROM call_attempts WHERE job_id = %s"
                      " ORDER BY try_index", (job_id,)).fetchall()


def test_garbage_responses_are_classified_and_every_invite_recorded(
    db: psycopg.Connection[Any], garbage_runtime: tuple[WorkerRuntime, SippPeer]
) -> None:
    """Unknown codes (499, 699, 555), 200 without SDP or media, malformed messages, unparsable early SDP.

    Pins, per case, the outcome and the codes recorded (table EXPECTED), and
    for all of them: every INVITE dialog sipp saw has exactly one CDR row with
    its Call-ID, no job is left ``dialing``, and the same agent places a sane
    call afterwards (the process survived all of it).
    """
    rt, peer = garbage_runtime
    jobs = _queue(db, list(EXPECTED))
    got = {case: run_dial_job(rt, job_id) for case, job_id in jobs.items()}
    print("    outcomes:", got)
    for case, (outcome, codes, status) in EXPECTED.items():
        tries = _tries(db, jobs[case])
        assert (got[case], [t[0] for t in tries]) == (outcome, codes), case
        assert db.execute("SELECT status FROM dial_jobs WHERE id = %s", (jobs[case],)).fetchone() == (status,), case
    recorded = [row[0] for row in db.execute("SELECT sip_call_id FROM call_attempts")]
    assert sorted(recorded) == sorted(d.call_id for d in peer.dialogs())
    assert rt.agent.running and rt.agent.is_registered


def test_redirect_is_never_followed(
    db: psycopg.Connection[Any], garbage_runtime: tuple[WorkerRuntime, SippPeer]
) -> None:
    """A 302 pointing at another number: the worker never INVITEs the Contact it was sent to (toll-fraud guard)."""
    rt, peer = garbage_runtime
    jobs = _queue(db, ["08"])
    run_dial_job(rt, jobs["08"])
    users = {d.user for d in peer.dialogs()}
    assert users and all(user.endswith("13900000008") for user in users)
    assert not any(REDIRECT_TARGET in (m.request_uri or "") for m in peer.received("INVITE"))


def test_redirect_is_recorded_as_a_final_failure_with_its_code(
    db: psycopg.Connection[Any], garbage_runtime: tuple[WorkerRuntime, SippPeer]
) -> None:
    """A 302 is a final answer (pjsua reports its own 487 after refusing to follow it): one INVITE,
    CDR status 302, outcome failed, job failed, not retried."""
    rt, peer = garbage_runtime
    jobs = _queue(db, ["08"])
    assert run_dial_job(rt, jobs["08"]) == "failed"
    assert [t[:2] for t in _tries(db, jobs["08"])] == [(302, "failed")]
    assert len(peer.received("INVITE")) == 1
