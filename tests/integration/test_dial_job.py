"""The dial task's whole path against real parts: pjsua2, sipp, Postgres, Redis.

Each test queues one job, runs ``run_dial_job`` in this process (the Celery
task is a thin wrapper, driven end to end in tests/e2e), and checks the CDR
rows, the job's new state, the metrics and that the password stayed secret.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from prometheus_client import REGISTRY

from shared.settings import load_settings
from tests.support.factories import add_jobs, create_campaign
from tests.support.sipp import DEFAULT_KEYS, SippPeer
from worker import runtime
from worker.job_runner import NotRegistered, run_dial_job
from worker.runtime import WorkerRuntime

pytestmark = pytest.mark.integration

PASSWORD = DEFAULT_KEYS["password"]
NUMBER = "+8613900001111"

RuntimeFactory = Callable[[SippPeer], WorkerRuntime]


@pytest.fixture
def worker_runtime(database_url: str, redis_url: str, redis_client: Any) -> Iterator[RuntimeFactory]:
    """Start this process's worker runtime against a sipp peer; stopped at teardown."""

    def start(peer: SippPeer, **overrides: Any) -> WorkerRuntime:
        settings = load_settings(
            database_url=database_url, redis_url=redis_url, sip_registrar=peer.address,
            sip_username=DEFAULT_KEYS["username"], sip_password=PASSWORD, **overrides,
        )
        return runtime.start(settings, None, name="test-worker", register_attempts=1)

    yield start
    runtime.stop(grace_s=2)


def queue_job(db: psycopg.Connection[Any], number: str = NUMBER, **campaign: Any) -> int:
    campaign_id = create_campaign(db, **{"ring_timeout_s": 3, "max_attempts": 3, **campaign})
    [job_id] = add_jobs(db, campaign_id, [number], status="queued")
    db.execute("UPDATE dial_jobs SET due_at = now(), queued_at = now() WHERE id = %s", (job_id,))
    return job_id


def job_row(db: psycopg.Connection[Any], job_id: int) -> dict[str, Any]:
    cur = db.execute("SELECT status, outcome, attempts, next_attempt_at > now() AS later, lease_until, worker,"
                     " last_status FROM dial_jobs WHERE id = %s", (job_id,))
    names = [c.name for c in cur.description or []]
    row = cur.fetchone()
    assert row is not None
    return dict(zip(names, row, strict=True))


def cdr_rows(db: psycopg.Connection[Any], job_id: int) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT try_index, variant, status_code, outcome, dialled_uri, sip_call_id IS NOT NULL, attempt"
        " FROM call_attempts WHERE job_id = %s ORDER BY attempt, try_index", (job_id,)
    ).fetchall()


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture(autouse=True)
def _no_password_in_logs(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    out, err = capfd.readouterr()
    for text in (caplog.text, out, err):
        assert PASSWORD not in text


def test_carrier_with_digest_auth_wants_plus86(
    db: psycopg.Connection[Any], sipp_uas: Any, worker_runtime: RuntimeFactory, redis_client: Any
) -> None:
    """The first attempt's 404: REGISTER 401->200, INVITE 407, national 404, 86 404, +86 answered."""
    peer = sipp_uas("carrier")
    rt = worker_runtime(peer)
    job_id = queue_job(db)
    before = counter("dialer_calls_total", campaign="test-campaign", trunk="default", outcome="answered")

    assert run_dial_job(rt, job_id) == "answered"

    rows = cdr_rows(db, job_id)
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("national", 404, "not_found"), ("cc", 404, "not_found"), ("e164", 200, "answered")]
    assert rows[2][4].startswith("sip:+8613900001111@")
    assert all(r[5] for r in rows), "every try keeps its SIP Call-ID"
    job = job_row(db, job_id)
    assert (job["status"], job["outcome"], job["attempts"], job["lease_until"], job["worker"]) == (
        "completed", "answered", 1, None, None)
    assert counter("dialer_calls_total", campaign="test-campaign", trunk="default", outcome="answered") == before + 1
    assert [m.status for m in peer.messages() if m.direction == "tx" and m.cseq_method == "REGISTER"][:2] == [401, 200]
    assert 407 in peer.sent_statuses("INVITE")
    assert redis_client.get("dialer:variant:default:86") == b"e164"


def test_remembered_variant_is_tried_first(
    db: psycopg.Connection[Any], sipp_uas: Any, worker_runtime: RuntimeFactory, redis_client: Any
) -> None:
    """Once the trunk accepted +86, the next job skips the two 404s."""
    peer = sipp_uas("number_plan")
    rt = worker_runtime(peer)
    redis_client.set("dialer:variant:default:86", "e164")
    job_id = queue_job(db)
    assert run_dial_job(rt, job_id) == "answered"
    assert [r[1] for r in cdr_rows(db, job_id)] == ["e164"]


def test_busy_is_rescheduled_by_campaign_policy(
    db: psycopg.Connection[Any], sipp_uas: Any, worker_runtime: RuntimeFactory
) -> None:
    rt = worker_runtime(sipp_uas("busy_486"))
    job_id = queue_job(db, retry_delays={"busy": 600})
    assert run_dial_job(rt, job_id) == "busy"
    assert [(r[2], r[3]) for r in cdr_rows(db, job_id)] == [(486, "busy")]
    job = job_row(db, job_id)
    assert (job["status"], job["outcome"], job["later"], job["last_status"]) == ("retry_wait", "busy", True, 486)


def test_ring_out_is_cancelled_and_counts_as_no_answer(
    db: psycopg.Connection[Any], sipp_uas: Any, worker_runtime: RuntimeFactory
) -> None:
    peer = sipp_uas("ring_no_answer")
    rt = worker_runtime(peer)
    job_id = queue_job(db, ring_timeout_s=1)
    assert run_dial_job(rt, job_id) == "no_answer"
    assert [(r[2], r[3]) for r in cdr_rows(db, job_id)] == [(487, "no_answer")]
    assert job_row(db, job_id)["status"] == "retry_wait"
    assert len(peer.received("CANCEL")) == 1


def test_503_then_success_within_one_attempt(
    db: psycopg.Connection[Any], sipp_uas: Any, worker_runtime: RuntimeFactory
) -> None:
    rt = worker_runtime(sipp_uas("flaky_503"))
    job_id = queue_job(db)
    assert run_dial_job(rt, job_id) == "answered"
    assert [(r[0], r[2], r[3]) for r in cdr_rows(db, job_id)] == [(0, 503, "transient"), (1, 200, "answered")]
    assert job_row(db, job_id)["attempts"] == 1


def test_answer_then_remote_bye_records_talk_time(
    db: psycopg.Connection[Any], sipp_uas: Any, worker_runtime: RuntimeFactory
) -> None:
    rt = worker_runtime(sipp_uas("remote_bye", pause_ms=500))
    job_id = queue_job(db, hold_s=30)
    assert run_dial_job(rt, job_id) == "answered"
    hangup_by, duration = db.execute(
        "SELECT hangup_by, duration_s FROM call_attempts WHERE job_id = %s", (job_id,)).fetchone() or (None, None)
    assert hangup_by == "remote"
    assert 0.3 < duration < 30


def test_redelivered_message_never_dials_twice(
    db: psycopg.Connection[Any], sipp_uas: Any, worker_runtime: RuntimeFactory
) -> None:
    """A second delivery of the same dial(job_id) finds the job claimed or done and is dropped."""
    peer = sipp_uas("answer_fast")
    rt = worker_runtime(peer)
    job_id = queue_job(db)
    before = counter("dialer_duplicate_deliveries_total", trunk="default")
    assert run_dial_job(rt, job_id) == "answered"
    assert run_dial_job(rt, job_id) == "duplicate"
    assert len(peer.received("INVITE")) == 1
    assert counter("dialer_duplicate_deliveries_total", trunk="default") == before + 1


def test_cancelled_campaign_and_dnc_stop_the_call_before_invite(
    db: psycopg.Connection[Any], sipp_uas: Any, worker_runtime: RuntimeFactory
) -> None:
    peer = sipp_uas("answer_fast")
    rt = worker_runtime(peer)
    job_id = queue_job(db)
    db.execute("INSERT INTO dnc (e164) VALUES (%s)", (NUMBER,))
    assert run_dial_job(rt, job_id) == "skip_dnc"
    assert (job_row(db, job_id)["status"], job_row(db, job_id)["attempts"]) == ("skipped_dnc", 0)
    other = create_campaign(db, name="cancelled-one", state="cancelled")
    [job2] = add_jobs(db, other, ["+8613900002222"], status="queued")
    assert run_dial_job(rt, job2) == "cancel"
    assert job_row(db, job2)["status"] == "cancelled"
    assert peer.received("INVITE") == []


def test_outside_calling_window_is_postponed_uncounted(
    db: psycopg.Connection[Any], sipp_uas: Any, worker_runtime: RuntimeFactory
) -> None:
    peer = sipp_uas("answer_fast")
    rt = worker_runtime(peer)
    shanghai_hour = (datetime.now(UTC) + timedelta(hours=8)).hour
    closed = f"{(shanghai_hour + 2) % 24:02d}:00-{(shanghai_hour + 3) % 24:02d}:00"
    job_id = queue_job(db, windows=closed)
    assert run_dial_job(rt, job_id) == "postpone"
    job = job_row(db, job_id)
    assert (job["status"], job["attempts"], job["later"]) == ("pending", 0, True)
    assert peer.received("INVITE") == []


def test_auth_failure_on_invite_flags_the_trunk_and_stops_consuming(
    db: psycopg.Connection[Any], sipp_uas: Any, worker_runtime: RuntimeFactory
) -> None:
    """403 on INVITE: re-register once, retry once, then fail auth_failed, flag the trunk, close the gate."""
    peer = sipp_uas("invite_forbidden")
    rt = worker_runtime(peer)
    job_id = queue_job(db)
    assert run_dial_job(rt, job_id) == "auth_failed"
    assert [(r[0], r[2], r[3]) for r in cdr_rows(db, job_id)] == [(0, 403, "auth_failed"), (1, 403, "auth_failed")]
    assert (job_row(db, job_id)["status"], job_row(db, job_id)["outcome"]) == ("failed", "auth_failed")
    assert db.execute("SELECT healthy FROM trunks WHERE name = 'default'").fetchone() == (False,)
    assert rt.gate is not None and not rt.gate.is_open
    [second] = add_jobs(db, create_campaign(db, name="second"), ["+8613900002222"], status="queued")
    with pytest.raises(NotRegistered):
        run_dial_job(rt, second)
    assert job_row(db, second)["status"] == "queued", "the message goes back to the queue; the job is untouched"
    assert len(peer.received("INVITE")) == 2
