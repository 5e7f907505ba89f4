"""The dispatcher against real Postgres and Redis: what it sends, when, how much, and only once."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
import redis
from celery import Celery

from producer.dispatcher import DispatchConfig, Dispatcher, TrunkLimits
from producer.pacing import codes_key
from shared.queue import make_celery
from shared.settings import load_settings
from tests.support.factories import add_jobs, create_campaign, fictional_numbers

pytestmark = pytest.mark.integration

Conn = psycopg.Connection[Any]
OPEN_LIMITS = {"default": TrunkLimits(max_concurrent=100_000, max_cps=100_000.0)}


def config(**overrides: Any) -> DispatchConfig:
    values: dict[str, Any] = {"trunk_limits": OPEN_LIMITS, "fleet_max_cps": 100_000.0,
                              "housekeeping_every_s": 3600.0}
    return DispatchConfig(**{**values, **overrides})


def numbers(count: int, *, start: int = 0) -> list[str]:
    """Fictional numbers +86 139 0000 xxxx from ``start`` on."""
    return fictional_numbers(start + count)[start:]


def sent_job_ids(client: redis.Redis, queue: str = "dial.default") -> list[int]:
    """Job ids of the dial messages waiting in a trunk's kombu list, oldest first."""
    ids = []
    for raw in reversed(client.lrange(queue, 0, -1)):
        body = json.loads(base64.b64decode(json.loads(raw)["body"]))
        ids.append(int(body[0][0]))
    return ids


def redis_seconds(client: redis.Redis) -> float:
    """Redis's clock, which the pacer's Lua script paces by."""
    seconds, micros = client.time()
    return float(seconds) + micros / 1e6


def statuses(db: Conn, campaign_id: int) -> dict[str, int]:
    rows = db.execute("SELECT status, count(*) FROM dial_jobs WHERE campaign_id = %s GROUP BY status",
                      (campaign_id,)).fetchall()
    return {status: count for status, count in rows}


@pytest.fixture
def app(redis_url: str, redis_client: redis.Redis) -> Iterator[Celery]:
    celery = make_celery(redis_url)
    yield celery
    celery.close()


def test_due_jobs_are_queued_then_sent_once(db: Conn, app: Celery, redis_client: redis.Redis) -> None:
    """Due jobs become queued with due_at/queued_at and one message each; later ticks send nothing again."""
    cid = create_campaign(db, cps=1000, max_concurrent=1000)
    due = add_jobs(db, cid, fictional_numbers(5))
    add_jobs(db, cid, numbers(2, start=100), due_in_s=3600)
    dispatcher = Dispatcher(db, app, redis_client, config())
    assert dispatcher.tick().dispatched == 5
    assert dispatcher.tick().dispatched == 0
    assert sorted(sent_job_ids(redis_client)) == due
    rows = db.execute("SELECT status, due_at = next_attempt_at, queued_at IS NOT NULL FROM dial_jobs"
                      " WHERE id = ANY(%s)", (due,)).fetchall()
    assert rows == [("queued", True, True)] * 5
    assert statuses(db, cid) == {"queued": 5, "pending": 2}


def test_pause_and_resume_are_honoured(db: Conn, app: Celery, redis_client: redis.Redis) -> None:
    """A paused campaign sends nothing; once resumed its due jobs go out."""
    cid = create_campaign(db, state="paused", cps=1000)
    add_jobs(db, cid, fictional_numbers(3))
    dispatcher = Dispatcher(db, app, redis_client, config())
    assert dispatcher.tick().dispatched == 0
    db.execute("UPDATE campaigns SET state = 'running' WHERE id = %s", (cid,))
    assert dispatcher.tick().dispatched == 3
    assert len(sent_job_ids(redis_client)) == 3


def test_closed_window_start_end_and_unhealthy_trunk_send_nothing(
    db: Conn, app: Celery, redis_client: redis.Redis
) -> None:
    """Outside the days, before start_at, after end_at, or on an unhealthy trunk: nothing is sent."""
    local = datetime.now(ZoneInfo("Asia/Shanghai"))
    names = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    other_days = ",".join(n for i, n in enumerate(names) if i not in {local.weekday(), (local.weekday() + 1) % 7})
    now = datetime.now(UTC)
    closed = [
        create_campaign(db, "other-days", days=other_days),
        create_campaign(db, "not-yet", start_at=now + timedelta(days=1)),
        create_campaign(db, "over", end_at=now - timedelta(minutes=1)),
        create_campaign(db, "sick-trunk", trunk="sick"),
    ]
    db.execute("INSERT INTO trunks (name, registrar, username, healthy) VALUES ('sick', '127.0.0.1:5060', 'u', false)")
    for index, cid in enumerate(closed):
        add_jobs(db, cid, numbers(2, start=10 * index))
    dispatcher = Dispatcher(db, app, redis_client, config())
    assert dispatcher.tick().dispatched == 0
    db.execute("UPDATE trunks SET healthy = true WHERE name = 'sick'")
    assert dispatcher.tick().dispatched == 2
    assert sent_job_ids(redis_client, "dial.sick") != []


def test_campaign_and_trunk_concurrency_caps(db: Conn, app: Celery, redis_client: redis.Redis) -> None:
    """queued+dialing never exceeds the campaign's max_concurrent nor the trunk's, and slots free up."""
    small = create_campaign(db, "small", max_concurrent=3, cps=1000)
    big = create_campaign(db, "big", max_concurrent=100, cps=1000)
    add_jobs(db, small, numbers(10, start=100))
    add_jobs(db, big, numbers(10, start=200))
    limits = {"default": TrunkLimits(max_concurrent=8, max_cps=1000.0)}
    dispatcher = Dispatcher(db, app, redis_client, config(trunk_limits=limits))
    for _ in range(3):
        dispatcher.tick()
    assert statuses(db, small)["queued"] == 3
    assert statuses(db, small)["queued"] + statuses(db, big)["queued"] == 8
    db.execute("UPDATE dial_jobs SET status = 'completed' WHERE id IN"
               " (SELECT id FROM dial_jobs WHERE campaign_id = %s AND status = 'queued' LIMIT 1)", (small,))
    assert dispatcher.tick().dispatched == 1
    assert len(sent_job_ids(redis_client)) == 9


def test_cps_paces_across_ticks(db: Conn, app: Celery, redis_client: redis.Redis) -> None:
    """At cps=4 the sends over any run stay within one second's burst plus 4/s of Redis time elapsed."""
    cid = create_campaign(db, cps=4, max_concurrent=1000)
    add_jobs(db, cid, fictional_numbers(40))
    dispatcher = Dispatcher(db, app, redis_client, config())

    started = redis_seconds(redis_client)
    sent = dispatcher.tick().dispatched
    assert 1 <= sent <= 4
    while sent < 7:  # ends once the rate let three more through
        sent += dispatcher.tick().dispatched
        threading.Event().wait(0.05)
    elapsed = redis_seconds(redis_client) - started
    assert sent <= 4 + 4 * elapsed
    assert len(sent_job_ids(redis_client)) == sent


def test_fleet_cap_binds_across_campaigns(db: Conn, app: Celery, redis_client: redis.Redis) -> None:
    """Two fast campaigns still share one fleet-wide budget in a tick."""
    for index in range(2):
        cid = create_campaign(db, f"fast-{index}", cps=1000, max_concurrent=1000)
        add_jobs(db, cid, numbers(20, start=100 * index))
    dispatcher = Dispatcher(db, app, redis_client, config(fleet_max_cps=3.0))
    started = redis_seconds(redis_client)
    sent = dispatcher.tick().dispatched
    assert 3 <= sent <= 3 + 3 * (redis_seconds(redis_client) - started)  # one second's burst, then 3/s


def test_throttled_trunk_is_slowed(db: Conn, app: Celery, redis_client: redis.Redis) -> None:
    """Workers counting a burst of 503/486 on the trunk halve its pace: 10 cps gives 5 at once, not 10."""
    cid = create_campaign(db, cps=1000, max_concurrent=1000)
    add_jobs(db, cid, numbers(30))
    bucket = int(time.time()) // 10
    for key in (codes_key("default", bucket - 1), codes_key("default", bucket - 2)):
        redis_client.hset(key, mapping={"total": 50, "throttled": 40})
        redis_client.expire(key, 120)
    limits = {"default": TrunkLimits(max_concurrent=1000, max_cps=10.0)}
    assert Dispatcher(db, app, redis_client, config(trunk_limits=limits)).tick().dispatched == 5


def test_numbers_called_too_often_today_are_postponed(db: Conn, app: Celery, redis_client: redis.Redis) -> None:
    """A number with 3 calls in 24 h (any campaign) waits until the oldest leaves the 24 h; 2 calls is fine."""
    tired, fresh = fictional_numbers(2)
    old = create_campaign(db, "old", state="finished")
    for number, calls in ((tired, 3), (fresh, 2)):
        (job,) = add_jobs(db, old, [number], status="completed")
        for attempt in range(1, calls + 1):
            db.execute(
                "INSERT INTO call_attempts (job_id, campaign_id, attempt, try_index, trunk, outcome, invite_at)"
                " VALUES (%s, %s, %s, 0, 'default', 'no_answer', now() - make_interval(hours => %s))",
                (job, old, attempt, attempt),
            )
    cid = create_campaign(db, "new", cps=1000)
    tired_job, fresh_job = add_jobs(db, cid, [tired, fresh])
    report = Dispatcher(db, app, redis_client, config()).tick()
    assert (report.dispatched, report.postponed) == (1, 1)
    assert sent_job_ids(redis_client) == [fresh_job]
    row = db.execute("SELECT status, next_attempt_at - (now() + interval '21 hours') FROM dial_jobs WHERE id = %s",
                     (tired_job,)).fetchone()
    assert row is not None and row[0] == "pending" and abs(row[1]) < timedelta(minutes=1)


def test_two_dispatchers_never_send_a_job_twice(
    database_url: str, db: Conn, redis_url: str, redis_client: redis.Redis
) -> None:
    """Two dispatchers with their own connections race over 10,000 due jobs: each is sent exactly once."""
    trunks = ("alpha", "beta")
    expected: list[int] = []
    for index in range(4):
        cid = create_campaign(db, f"race-{index}", trunk=trunks[index % 2], cps=100_000, max_concurrent=100_000)
        rows = db.execute(
            "INSERT INTO dial_jobs (campaign_id, e164) SELECT %s, '+86139' || lpad(g::text, 8, '0')"
            " FROM generate_series(%s::int, %s::int) g RETURNING id", (cid, index * 2500, index * 2500 + 2499),
        ).fetchall()
        expected += [row[0] for row in rows]
    limits = {name: TrunkLimits(100_000, 100_000.0) for name in trunks}
    cfg = config(trunk_limits=limits, batch_size=300, max_calls_per_number_per_day=100)
    errors: list[BaseException] = []
    per_dispatcher: list[int] = []

    def run() -> None:
        try:
            celery = make_celery(redis_url)
            client = redis.Redis.from_url(redis_url)
            with psycopg.connect(database_url, autocommit=True) as conn:
                dispatcher = Dispatcher(conn, celery, client, cfg)
                sent = 0
                while conn.execute("SELECT EXISTS (SELECT 1 FROM dial_jobs WHERE status = 'pending')"
                                   ).fetchone() == (True,):
                    sent += dispatcher.tick().dispatched
                per_dispatcher.append(sent)
            celery.close()
            client.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=110)
    assert not errors
    assert sum(per_dispatcher) == 10_000
    sent = sent_job_ids(redis_client, "dial.alpha") + sent_job_ids(redis_client, "dial.beta")
    assert len(sent) == len(expected) == 10_000
    assert sorted(sent) == sorted(expected)


def test_finished_campaigns(db: Conn, app: Celery, redis_client: redis.Redis) -> None:
    """Running with every job final -> finished; one job still to dial, or no job at all -> still running."""
    done = create_campaign(db, "done")
    add_jobs(db, done, fictional_numbers(2), status="completed")
    add_jobs(db, done, numbers(1, start=100), status="skipped_dnc")
    busy = create_campaign(db, "busy")
    add_jobs(db, busy, fictional_numbers(1), status="completed")
    add_jobs(db, busy, numbers(1, start=100), status="retry_wait", due_in_s=3600)
    create_campaign(db, "empty")
    report = Dispatcher(db, app, redis_client, config()).tick(housekeeping=True)
    assert report.finished == ["done"]
    states = dict(db.execute("SELECT name, state FROM campaigns").fetchall())
    assert states == {"done": "finished", "busy": "running", "empty": "running"}


def test_recurring_campaign_reopens_exhausted_retryable_jobs(
    db: Conn, app: Celery, redis_client: redis.Redis
) -> None:
    """At a recurrence, failed busy/no_answer/transient jobs last changed before it go back to pending."""
    cid = create_campaign(db, "weekly", recur_cron="* * * * *")
    reopen = add_jobs(db, cid, fictional_numbers(3), status="failed")
    keep = add_jobs(db, cid, numbers(2, start=100), status="failed")
    db.execute("UPDATE dial_jobs SET attempts = 3, outcome = o, updated_at = now() - interval '5 minutes'"
               " FROM unnest(%s::bigint[], %s::text[]) AS v(id, o) WHERE dial_jobs.id = v.id",
               (reopen + keep, ["busy", "no_answer", "transient", "rejected", "busy"]))
    # The last one failed after this minute's firing: it waits for the next.
    db.execute("UPDATE dial_jobs SET updated_at = now() WHERE id = %s", (keep[1],))
    db.execute("INSERT INTO call_attempts (job_id, campaign_id, attempt, try_index, trunk, outcome)"
               " VALUES (%s, %s, 3, 0, 'default', 'busy')", (keep[1], cid))
    dispatcher = Dispatcher(db, app, redis_client, config())
    report = dispatcher.tick(housekeeping=True)
    assert report.reopened == {"weekly": 3}
    assert report.finished == []
    rows = db.execute("SELECT id, status, attempts FROM dial_jobs WHERE campaign_id = %s ORDER BY id",
                      (cid,)).fetchall()
    assert {r[0]: (r[1], r[2]) for r in rows} == {
        **{job: ("pending", 0) for job in reopen}, keep[0]: ("failed", 3), keep[1]: ("failed", 3)}
    assert dispatcher.tick(housekeeping=True).reopened == {}  # idempotent


def test_config_reads_trunk_limits_without_their_passwords() -> None:
    """The dispatcher never registers: configured trunks' limits load even where their secrets are absent."""
    settings = load_settings(
        sip_registrar="127.0.0.1:5060", sip_max_concurrent=6, sip_max_cps=7.5, fleet_max_cps=50,
        trunks=[{"name": "carrier-b", "registrar": "127.0.0.1:5070", "username": "u",
                 "password_env": "DIALER_TEST_UNSET_PASSWORD_VARIABLE", "max_concurrent": 3, "max_cps": 2}],
    )
    cfg = DispatchConfig.from_settings(settings, batch_size=10)
    assert cfg.trunk_limits == {"default": TrunkLimits(6, 7.5), "carrier-b": TrunkLimits(3, 2.0)}
    assert (cfg.fleet_max_cps, cfg.batch_size, cfg.reaper.lease_grace_s) == (50, 10, settings.lease_grace_s)
