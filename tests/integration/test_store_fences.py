"""The fences that keep two parties from writing one job, against real Postgres and Redis.

Each test here was written for a mutant that survived every other test: break
the fence and the test fails (checked by hand). They drive the store and the
reaper directly, the way a stale worker, a re-claim and a long Postgres outage
interleave them, and assert on the job row and on what the reaper sends, never
on calls (a claim that drops a duplicate would hide the bug).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
import redis
from celery import Celery

from producer.reaper import ReaperConfig, reap_lost, requeue_stale
from shared.job_states import JobStatus
from shared.outcomes import Outcome
from shared.queue import make_celery
from shared.retry_policy import JobDecision
from tests.support.factories import add_jobs, create_campaign, fictional_numbers
from worker import store

pytestmark = pytest.mark.integration

Conn = psycopg.Connection[Any]
REAPER = ReaperConfig(lease_grace_s=60, requeue_after_s=60)
ANSWERED = JobDecision(JobStatus.COMPLETED, Outcome.ANSWERED, None)


def answered_try(call_id: str) -> store.TryRow:
    now = datetime.now(UTC)
    return store.TryRow(
        try_index=0, variant="national", uri="sip:13900000000@pbx.invalid", call_id=call_id, status=200,
        reason="OK", provisional=[], invite_at=now, first_provisional_at=now, answer_at=now, end_at=now,
        duration_s=1.0, hangup_by="us", outcome=Outcome.ANSWERED,
    )


def queued_job(db: Conn, name: str = "fences") -> int:
    campaign = create_campaign(db, name, max_attempts=5)
    (job,) = add_jobs(db, campaign, fictional_numbers(1), status="queued")
    return job


def claim(db: Conn, job_id: int, worker: str) -> store.ClaimedJob:
    claimed = store.claim(db, job_id, worker, extra_s=30)
    assert claimed is not None, f"{worker} could not claim job {job_id}"
    return claimed


def lose_lease(db: Conn, job_id: int) -> None:
    """The worker's lease ran out long ago (its Postgres was unreachable) and the reaper gave the job up."""
    db.execute("UPDATE dial_jobs SET lease_until = now() - interval '10 minutes' WHERE id = %s", (job_id,))
    assert [j.job_id for j in reap_lost(db, REAPER)] == [job_id]


def dispatch_again(db: Conn, job_id: int) -> None:
    """What the dispatcher does to a due retry_wait job (its own SQL is tested in test_dispatcher)."""
    db.execute("UPDATE dial_jobs SET status = 'queued', queued_at = now() WHERE id = %s AND status = 'retry_wait'",
               (job_id,))


def job(db: Conn, job_id: int) -> tuple[Any, ...]:
    row = db.execute("SELECT status, outcome, attempts, worker FROM dial_jobs WHERE id = %s", (job_id,)).fetchone()
    assert row is not None
    return tuple(row)


def test_stale_worker_cannot_overwrite_a_job_another_worker_reclaimed(db: Conn) -> None:
    """A lost, then re-claimed by B: A's late finish returns False and B's claim stands (the ``worker =`` fence)."""
    job_id = queued_job(db)
    first = claim(db, job_id, "worker-a")
    lose_lease(db, job_id)
    dispatch_again(db, job_id)
    claim(db, job_id, "worker-b")
    assert job(db, job_id) == ("dialing", "worker_lost", 2, "worker-b")

    assert store.finish(db, first, "worker-a", [answered_try("late-a")], ANSWERED) is False
    assert job(db, job_id) == ("dialing", "worker_lost", 2, "worker-b")


def test_real_outcome_overrules_worker_lost_of_the_same_attempt(db: Conn) -> None:
    """The reaper wrote worker_lost while A's Postgres was down; A's answered call, written later, wins."""
    job_id = queued_job(db)
    first = claim(db, job_id, "worker-a")
    lose_lease(db, job_id)
    assert job(db, job_id)[:2] == ("retry_wait", "worker_lost")

    assert store.finish(db, first, "worker-a", [answered_try("late-a")], ANSWERED) is True
    assert job(db, job_id) == ("completed", "answered", 1, None)


def test_overrule_waits_for_nobody_to_have_claimed_since(db: Conn) -> None:
    """Once B re-claimed (attempt 2) and was lost too, A's attempt-1 outcome must not replace attempt 2's."""
    job_id = queued_job(db)
    first = claim(db, job_id, "worker-a")
    lose_lease(db, job_id)
    dispatch_again(db, job_id)
    second = claim(db, job_id, "worker-b")
    lose_lease(db, job_id)
    assert job(db, job_id) == ("retry_wait", "worker_lost", 2, None)

    assert store.finish(db, first, "worker-a", [answered_try("late-a")], ANSWERED) is False
    assert job(db, job_id) == ("retry_wait", "worker_lost", 2, None)
    # B's own late outcome is the one that may overrule.
    assert store.finish(db, second, "worker-b", [answered_try("late-b")], ANSWERED) is True
    assert job(db, job_id) == ("completed", "answered", 2, None)


@pytest.fixture
def app(redis_url: str, redis_client: redis.Redis) -> Iterator[Celery]:
    celery = make_celery(redis_url)
    yield celery
    celery.close()


def sent_job_ids(client: redis.Redis, queue: str = "dial.default") -> list[int]:
    return [int(json.loads(base64.b64decode(json.loads(raw)["body"]))[0][0])
            for raw in reversed(client.lrange(queue, 0, -1))]


def test_reaper_resends_only_queued_jobs_never_dialing_ones(db: Conn, app: Celery, redis_client: redis.Redis) -> None:
    """A dialing job queued long ago is a worker's, not a lost message: only the stale queued job is re-sent."""
    campaign = create_campaign(db, "resend")
    dialing, queued = add_jobs(db, campaign, fictional_numbers(2), status="queued")
    claim(db, dialing, "worker-a")
    db.execute("UPDATE dial_jobs SET queued_at = now() - interval '10 minutes' WHERE id = %s", (dialing,))
    db.execute("UPDATE dial_jobs SET queued_at = now() - interval '2 minutes' WHERE id = %s", (queued,))

    assert requeue_stale(db, app, redis_client, REAPER) == 1
    assert sent_job_ids(redis_client) == [queued]
    row = db.execute("SELECT status, worker, queued_at < now() - interval '5 minutes' FROM dial_jobs WHERE id = %s",
                     (dialing,)).fetchone()
    assert row == ("dialing", "worker-a", True)  # untouched: not marked as re-sent either
