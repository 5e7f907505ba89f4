"""A placed call whose result comes after the dial task stopped waiting: recorded once, never dialled twice.

The task's wait is cut to 0.5 s (as a stalled SIP thread or a slow loop would
make it run out) while sipp answers and the campaign holds the call 2 s. The
agent aborts the call (BYE); the attempt must wait for that call to be over,
record it as the one try it was, and place no second INVITE.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from shared.settings import load_settings
from tests.support.factories import add_jobs, create_campaign
from tests.support.fleet import wait_until
from tests.support.sipp import DEFAULT_KEYS, SippPeer
from worker import dialing, job_runner, runtime
from worker.job_runner import run_dial_job
from worker.runtime import WorkerRuntime
from worker.sip import CallResult, RegistrationResult

pytestmark = pytest.mark.integration

NUMBER = "+8613900001111"


@pytest.fixture
def worker_runtime(
    database_url: str, redis_url: str, redis_client: Any
) -> Iterator[Callable[[SippPeer], WorkerRuntime]]:
    """This process's worker runtime against a sipp peer; stopped at teardown."""

    def start(peer: SippPeer) -> WorkerRuntime:
        settings = load_settings(database_url=database_url, redis_url=redis_url, sip_registrar=peer.address,
                                 sip_username=DEFAULT_KEYS["username"], sip_password=DEFAULT_KEYS["password"])
        return runtime.start(settings, None, name="test-worker", register_attempts=1)

    yield start
    runtime.stop(grace_s=2)


def test_a_call_whose_result_is_late_is_one_cdr_row_and_one_invite(
    db: psycopg.Connection[Any], sipp_uas: Any, worker_runtime: Callable[[SippPeer], WorkerRuntime],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One CDR row (the answered call, with its Call-ID), the job settled, one INVITE to the number at sipp."""
    peer = sipp_uas("fault_hold")
    rt = worker_runtime(peer)
    original = job_runner._MeteredPlacer.call

    def impatient(self: Any, uri: str, *, ring_timeout_s: float, hold_s: float,
                  timeout_s: float | None = None) -> CallResult:
        return original(self, uri, ring_timeout_s=ring_timeout_s, hold_s=hold_s, timeout_s=0.5)

    monkeypatch.setattr(job_runner._MeteredPlacer, "call", impatient)
    campaign_id = create_campaign(db, ring_timeout_s=5, hold_s=2, max_attempts=3)
    [job_id] = add_jobs(db, campaign_id, [NUMBER], status="queued")

    outcome = run_dial_job(rt, job_id)

    rows = db.execute("SELECT attempt, try_index, outcome, sip_call_id FROM call_attempts WHERE job_id = %s",
                      (job_id,)).fetchall()
    assert len(rows) == 1, rows
    [(attempt, try_index, row_outcome, call_id)] = rows
    assert (attempt, try_index) == (1, 0)
    dialogs = peer.dialogs()
    assert len(dialogs) == 1, dialogs
    assert call_id == dialogs[0].call_id
    assert row_outcome == outcome == "answered"
    status = db.execute("SELECT status, attempts FROM dial_jobs WHERE id = %s", (job_id,)).fetchone()
    assert status == ("completed", 1)


def test_a_stalled_sip_thread_gives_one_timeout_row_with_the_call_id_and_no_second_invite(
    db: psycopg.Connection[Any], sipp_uas: Any, worker_runtime: Callable[[SippPeer], WorkerRuntime],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The SIP thread stalls 4 s right after the INVITE left (a slow registration callback on it), longer
    than the task waits for the aborted call to end (1 s here). Pins: one CDR row with the call's Call-ID
    and INVITE time, reason timeout, outcome transient; the job goes to retry_wait (attempt counted);
    sipp saw exactly one INVITE dialog."""
    peer = sipp_uas("fault_hold")
    rt = worker_runtime(peer)
    monkeypatch.setattr(dialing, "ABORT_WAIT_S", 1.0)
    stall = threading.Event()

    def slow_callback(_: RegistrationResult) -> None:
        if stall.is_set():
            stall.clear()
            time.sleep(4.0)  # the fault: the SIP thread does nothing else meanwhile

    rt.agent.on_registration_change(slow_callback)
    original = job_runner._MeteredPlacer.call

    def stalling(self: Any, uri: str, *, ring_timeout_s: float, hold_s: float,
                 timeout_s: float | None = None) -> CallResult:
        def stall_once_invited() -> None:
            wait_until(lambda: bool(peer.received("INVITE")), 10, "the INVITE at sipp", interval_s=0.02)
            stall.set()
            rt.agent.reregister(timeout_s=10)
        threading.Thread(target=stall_once_invited, daemon=True).start()
        return original(self, uri, ring_timeout_s=ring_timeout_s, hold_s=hold_s, timeout_s=1.0)

    monkeypatch.setattr(job_runner._MeteredPlacer, "call", stalling)
    campaign_id = create_campaign(db, ring_timeout_s=5, hold_s=2, max_attempts=3)
    [job_id] = add_jobs(db, campaign_id, [NUMBER], status="queued")

    assert run_dial_job(rt, job_id) == "transient"

    rows = db.execute("SELECT attempt, try_index, outcome, reason, status_code, sip_call_id, invite_at IS NOT NULL"
                      " FROM call_attempts WHERE job_id = %s", (job_id,)).fetchall()
    assert len(rows) == 1, rows
    [(attempt, try_index, outcome, reason, status, call_id, has_invite_at)] = rows
    assert (attempt, try_index, outcome, reason, status, has_invite_at) == (1, 0, "transient", "timeout", None, True)
    wait_until(lambda: bool(peer.received("BYE")), 15, "the aborted call's BYE once the SIP thread runs again")
    dialogs = peer.dialogs()
    assert len(dialogs) == 1 and call_id == dialogs[0].call_id, (call_id, dialogs)
    assert db.execute("SELECT status, attempts FROM dial_jobs WHERE id = %s", (job_id,)).fetchone() == (
        "retry_wait", 1)
