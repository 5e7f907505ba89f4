"""Every status change the real SQL makes is one the table in shared/job_states.py writes down, and vice versa.

A trigger (installed by this test only) records each change of
``dial_jobs.status``; each test sets rows up by INSERT or by plain SQL, clears
the record, runs one move through the real function (store, reaper,
dispatcher, campaigns, DNC) and compares what changed with that move's edge:
nothing outside it, and every pair of it reached.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import redis
from celery import Celery

from producer.campaigns import change_state
from producer.dispatcher import DispatchConfig, Dispatcher
from producer.dnc import add_dnc
from producer.reaper import ReaperConfig, reap_lost, reopen_recurring
from shared.job_states import MOVES, TRANSITIONS, JobStatus, Move
from shared.outcomes import Outcome
from shared.queue import make_celery
from shared.retry_policy import JobDecision
from tests.support.factories import create_campaign
from worker import store

pytestmark = pytest.mark.integration

Conn = psycopg.Connection[Any]
Pairs = set[tuple[str, str]]
S = JobStatus
_numbers = itertools.count()

AUDIT = """
CREATE TABLE IF NOT EXISTS job_status_audit (old text NOT NULL, new text NOT NULL);
CREATE OR REPLACE FUNCTION job_status_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_status_audit VALUES (OLD.status, NEW.status);
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS job_status_audit ON dial_jobs;
CREATE TRIGGER job_status_audit AFTER UPDATE OF status ON dial_jobs
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION job_status_audit();
"""


@pytest.fixture
def audited(db: Conn) -> Iterator[Callable[[Callable[[], object]], Pairs]]:
    """``audited(action)`` runs ``action`` and returns the (old, new) status pairs it wrote."""
    db.execute(AUDIT.encode())

    def run(action: Callable[[], object]) -> Pairs:
        db.execute("TRUNCATE job_status_audit")
        action()
        return {(str(o), str(n)) for o, n in db.execute("SELECT old, new FROM job_status_audit")}

    yield run
    db.execute("DROP TRIGGER IF EXISTS job_status_audit ON dial_jobs")


def edge_pairs(move: Move) -> Pairs:
    edge = MOVES[move]
    return {(s.value, t.value) for s in edge.sources for t in edge.targets if s is not t}


def job(db: Conn, campaign: int, status: str, **columns: Any) -> int:
    """A row inserted straight in ``status`` (no UPDATE, so the audit does not see the set-up)."""
    values = {"campaign_id": campaign, "e164": f"+86139{next(_numbers):08d}", "status": status,
              "next_attempt_at": datetime.now(UTC) - timedelta(seconds=1), **columns}
    row = db.execute(f"INSERT INTO dial_jobs ({', '.join(values)}) VALUES ({', '.join(['%s'] * len(values))})"
                     " RETURNING id".encode(), tuple(values.values())).fetchone()
    assert row is not None
    return int(row[0])


def claimed(db: Conn, campaign: int, **columns: Any) -> store.ClaimedJob:
    got = store.claim(db, job(db, campaign, "queued", **columns), "w1", extra_s=30)
    assert got is not None
    return got


@pytest.fixture
def app(redis_url: str, redis_client: redis.Redis) -> Iterator[Celery]:
    celery = make_celery(redis_url)
    yield celery
    celery.close()


def test_dispatch_and_claim(db: Conn, audited: Any, app: Celery, redis_client: redis.Redis) -> None:
    """Due pending and retry_wait jobs become queued; a queued job becomes dialing."""
    cid = create_campaign(db, "dispatch")
    job(db, cid, "pending")
    job(db, cid, "retry_wait", attempts=1)
    dispatched = audited(lambda: Dispatcher(db, app, redis_client, DispatchConfig()).tick(housekeeping=False))
    assert dispatched == edge_pairs(Move.DISPATCH)
    assert audited(lambda: claimed(db, cid)) == edge_pairs(Move.CLAIM)


def test_record_every_decision(db: Conn, audited: Any) -> None:
    """A worker records each status its decisions can carry, out of dialing."""
    cid = create_campaign(db, "record")
    decisions = [JobDecision(status, Outcome.ANSWERED, None) for status in MOVES[Move.RECORD].targets]
    jobs = [claimed(db, cid) for _ in decisions]
    seen = audited(lambda: [store.finish(db, j, "w1", [], d) for j, d in zip(jobs, decisions, strict=True)])
    assert seen == edge_pairs(Move.RECORD)


def test_postpone_gives_the_attempt_back(db: Conn, audited: Any) -> None:
    """First attempt postponed: pending again; a later attempt: retry_wait."""
    cid = create_campaign(db, "postpone")
    first, later = claimed(db, cid), claimed(db, cid, attempts=1)
    later_at = datetime.now(UTC) + timedelta(minutes=5)
    seen = audited(lambda: [store.postpone(db, j, "w1", later_at) for j in (first, later)])
    assert seen == edge_pairs(Move.POSTPONE)


def test_reaper_gives_up_lost_leases(db: Conn, audited: Any) -> None:
    """An expired lease with attempts left goes to retry_wait, the last attempt to failed."""
    cid = create_campaign(db, "reap", max_attempts=2)
    for attempts in (1, 2):
        job(db, cid, "dialing", attempts=attempts, worker="w1", lease_until=datetime.now(UTC) - timedelta(hours=1))
    seen = audited(lambda: reap_lost(db, ReaperConfig(lease_grace_s=1)))
    assert seen == edge_pairs(Move.REAP_LOST)


def test_overrule_of_worker_lost_from_each_state(db: Conn, audited: Any) -> None:
    """A worker's late outcome replaces worker_lost from retry_wait, failed or queued, to any recorded status."""
    cid = create_campaign(db, "overrule")
    cases = []
    for source in MOVES[Move.OVERRULE_LOST].sources:
        for target in MOVES[Move.OVERRULE_LOST].targets:
            held = claimed(db, cid)
            db.execute("UPDATE dial_jobs SET status = %s, outcome = 'worker_lost', worker = NULL, lease_until = NULL"
                       " WHERE id = %s", (source.value, held.job_id))
            cases.append((held, JobDecision(target, Outcome.ANSWERED, None)))
    seen = audited(lambda: [store.finish(db, j, "w1", [], d) for j, d in cases])
    assert seen == edge_pairs(Move.OVERRULE_LOST)


def test_recurring_campaign_reopens_failed_jobs(db: Conn, audited: Any) -> None:
    """A recurrence puts failed busy jobs back to pending."""
    cid = create_campaign(db, "weekly", recur_cron="* * * * *")
    job(db, cid, "failed", outcome="busy", attempts=3, updated_at=datetime.now(UTC) - timedelta(minutes=5))
    seen = audited(lambda: reopen_recurring(db, datetime.now(UTC)))
    assert seen == edge_pairs(Move.REOPEN)


def test_cancel_and_dnc_take_waiting_jobs_only(db: Conn, audited: Any) -> None:
    """Cancel and DNC move pending, queued and retry_wait jobs; a dialing job is left to its worker."""
    numbers = {}
    for name in ("cancel", "dnc"):
        cid = create_campaign(db, name)
        for status in ("pending", "queued", "retry_wait", "dialing"):
            numbers[(name, status)] = f"+86139{next(_numbers):08d}"
            job(db, cid, status, e164=numbers[(name, status)], worker="w1" if status == "dialing" else None)
    assert audited(lambda: change_state(db, "cancel", "cancel")) == edge_pairs(Move.CANCEL)
    dnc_numbers = [n for (name, _), n in numbers.items() if name == "dnc"]
    assert audited(lambda: [add_dnc(db, n) for n in dnc_numbers]) == edge_pairs(Move.SKIP_DNC)


def test_every_transition_of_the_table_belongs_to_a_move() -> None:
    """The table is the union of the moves the tests above ran: nothing in it that no code performs."""
    table = {(s.value, t.value) for s, targets in TRANSITIONS.items() for t in targets}
    assert table == set().union(*(edge_pairs(move) for move in Move))
