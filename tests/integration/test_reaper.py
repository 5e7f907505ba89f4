"""The reaper against real Postgres and Redis: lost workers become worker_lost attempts, lost messages are re-sent."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
import redis
from celery import Celery
from prometheus_client import REGISTRY

from producer.dispatcher import DispatchConfig, Dispatcher
from producer.reaper import ReaperConfig, reap_lost, requeue_stale
from shared.queue import enqueue_dial, make_celery
from tests.support.factories import add_jobs, create_campaign, fictional_numbers

pytestmark = pytest.mark.integration

Conn = psycopg.Connection[Any]
FAST = ReaperConfig(lease_grace_s=60, requeue_after_s=60)


def numbers(count: int, *, start: int = 0) -> list[str]:
    """Fictional numbers +86 139 0000 xxxx from ``start`` on."""
    return fictional_numbers(start + count)[start:]


def sent_job_ids(client: redis.Redis, queue: str = "dial.default") -> list[int]:
    return [int(json.loads(base64.b64decode(json.loads(raw)["body"]))[0][0])
            for raw in reversed(client.lrange(queue, 0, -1))]


def job_number(db: Conn) -> int:
    row = db.execute("SELECT count(*) FROM dial_jobs").fetchone()
    return int(row[0]) if row else 0


def dialing_job(db: Conn, campaign_id: int, *, lease_ago_s: float, attempts: int = 1, worker: str = "w1") -> int:
    (job,) = add_jobs(db, campaign_id, numbers(1, start=job_number(db)))
    db.execute("UPDATE dial_jobs SET status = 'dialing', attempts = %s, worker = %s,"
               " lease_until = now() - make_interval(secs => %s) WHERE id = %s",
               (attempts, worker, lease_ago_s, job))
    return job


def lost_count(campaign: str) -> float:
    return REGISTRY.get_sample_value("dialer_worker_lost_total", {"campaign": campaign}) or 0.0


@pytest.fixture
def app(redis_url: str, redis_client: redis.Redis) -> Iterator[Celery]:
    celery = make_celery(redis_url)
    yield celery
    celery.close()


def test_expired_lease_becomes_worker_lost_and_retry_wait(db: Conn) -> None:
    """A lease 2 min past (grace 60 s): attempt row try_index -1 by the dead worker, job in retry_wait."""
    cid = create_campaign(db, "reap", retry_delays={"worker_lost": 300})
    job = dialing_job(db, cid, lease_ago_s=120, attempts=1, worker="host-a:42")
    fresh = dialing_job(db, cid, lease_ago_s=30, attempts=1)
    before = lost_count("reap")
    lost = reap_lost(db, FAST)
    assert [(j.job_id, j.worker, j.attempt, j.status) for j in lost] == [(job, "host-a:42", 1, "retry_wait")]
    assert lost_count("reap") == before + 1
    attempt = db.execute("SELECT attempt, try_index, outcome, worker FROM call_attempts WHERE job_id = %s",
                         (job,)).fetchall()
    assert attempt == [(1, -1, "worker_lost", "host-a:42")]
    row = db.execute("SELECT status, outcome, worker, lease_until, next_attempt_at - now() FROM dial_jobs"
                     " WHERE id = %s", (job,)).fetchone()
    assert row is not None and row[:4] == ("retry_wait", "worker_lost", None, None)
    assert timedelta(minutes=4) < row[4] <= timedelta(minutes=5)
    assert db.execute("SELECT status FROM dial_jobs WHERE id = %s", (fresh,)).fetchone() == ("dialing",)
    assert reap_lost(db, FAST) == []  # nothing twice


def test_spent_attempts_fail_the_job(db: Conn) -> None:
    """A lost worker on the last allowed attempt fails the job, with worker_lost kept as its outcome."""
    cid = create_campaign(db, "spent", max_attempts=2)
    job = dialing_job(db, cid, lease_ago_s=600, attempts=2)
    assert [j.status for j in reap_lost(db, FAST)] == ["failed"]
    assert db.execute("SELECT status, outcome FROM dial_jobs WHERE id = %s", (job,)).fetchone() == (
        "failed", "worker_lost")


def test_worker_finishing_at_the_same_moment_wins(database_url: str, db: Conn) -> None:
    """The reaper blocks on the worker's uncommitted finish; once it commits, the reaper's fence finds nothing."""
    cid = create_campaign(db, "race")
    job = dialing_job(db, cid, lease_ago_s=120)
    with psycopg.connect(database_url) as worker_conn:
        worker_conn.execute("UPDATE dial_jobs SET status = 'completed', outcome = 'answered', lease_until = NULL"
                            " WHERE id = %s AND status = 'dialing' AND worker = 'w1'", (job,))
        result: list[Any] = []
        with psycopg.connect(database_url, autocommit=True) as reaper_conn:
            pid = reaper_conn.info.backend_pid
            thread = threading.Thread(target=lambda: result.append(reap_lost(reaper_conn, FAST)))
            thread.start()
            waited = threading.Event()
            while not db.execute("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
                                 (pid,)).fetchone() == (True,):
                assert thread.is_alive()
                waited.wait(0.01)
            worker_conn.commit()
            thread.join(timeout=30)
    assert result == [[]]
    assert db.execute("SELECT status FROM dial_jobs WHERE id = %s", (job,)).fetchone() == ("completed",)
    assert db.execute("SELECT count(*) FROM call_attempts").fetchone() == (0,)


def test_lost_message_is_sent_again_once(db: Conn, app: Celery, redis_client: redis.Redis) -> None:
    """Queued 2 min ago with no message: re-sent once with a fresh queued_at; queued 10 s ago: left alone."""
    cid = create_campaign(db, "lost-msg")
    stale, recent = add_jobs(db, cid, fictional_numbers(2), status="queued")
    db.execute("UPDATE dial_jobs SET queued_at = now() - interval '2 minutes' WHERE id = %s", (stale,))
    db.execute("UPDATE dial_jobs SET queued_at = now() - interval '10 seconds' WHERE id = %s", (recent,))
    before = REGISTRY.get_sample_value("dialer_requeued_total", {"campaign": "lost-msg"}) or 0.0
    assert requeue_stale(db, app, redis_client, FAST) == 1
    assert requeue_stale(db, app, redis_client, FAST) == 0
    assert sent_job_ids(redis_client) == [stale]
    assert REGISTRY.get_sample_value("dialer_requeued_total", {"campaign": "lost-msg"}) == before + 1
    row = db.execute("SELECT status, queued_at > now() - interval '5 seconds' FROM dial_jobs WHERE id = %s",
                     (stale,)).fetchone()
    assert row == ("queued", True)


def test_messages_still_waiting_are_not_sent_again(db: Conn, app: Celery, redis_client: redis.Redis) -> None:
    """Workers down: stale queued jobs whose messages still wait in the list get no duplicates."""
    cid = create_campaign(db, "workers-down")
    jobs = add_jobs(db, cid, numbers(3), status="queued")
    db.execute("UPDATE dial_jobs SET queued_at = now() - interval '10 minutes'")
    for job in jobs[:2]:
        enqueue_dial(app, job, "default")
    assert requeue_stale(db, app, redis_client, FAST) == 1  # one message short: the oldest stale job
    assert requeue_stale(db, app, redis_client, FAST) == 0
    assert len(sent_job_ids(redis_client)) == 3


def test_dispatcher_housekeeping_runs_the_reaper(db: Conn, app: Celery, redis_client: redis.Redis) -> None:
    """One dispatcher tick with housekeeping reaps a lost lease and re-sends a lost message."""
    cid = create_campaign(db, "house")
    dialing_job(db, cid, lease_ago_s=300)
    (queued,) = add_jobs(db, cid, numbers(1, start=100), status="queued")
    db.execute("UPDATE dial_jobs SET queued_at = now() - interval '5 minutes' WHERE id = %s", (queued,))
    report = Dispatcher(db, app, redis_client, DispatchConfig(reaper=FAST)).tick(housekeeping=True)
    assert (report.lost, report.requeued) == (1, 1)
    assert sent_job_ids(redis_client) == [queued]
