"""Spooled outcomes (worker/spool.py): durable files, replayed at most once, never over a newer truth."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from shared.db.pool import open_pool
from shared.job_states import JobStatus
from shared.outcomes import Outcome
from shared.retry_policy import JobDecision
from tests.support.factories import add_jobs, create_campaign
from worker import spool, store

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
ANSWERED = JobDecision(JobStatus.COMPLETED, Outcome.ANSWERED, None)


@pytest.fixture
def pool(database_url: str) -> Iterator[ConnectionPool]:
    p = open_pool(database_url, min_size=1, max_size=2, name="spool-test")
    yield p
    p.close()


def claimed(db: psycopg.Connection[Any], worker: str = "host:101") -> store.ClaimedJob:
    campaign_id = create_campaign(db)
    [job_id] = add_jobs(db, campaign_id, ["+8613900001111"], status="queued")
    job = store.claim(db, job_id, worker, 60.0)
    assert job is not None
    return job


def answered_row() -> store.TryRow:
    return store.TryRow(
        try_index=0, variant="e164", uri="sip:+8613900001111@pbx", call_id="abc@host", status=200, reason="OK",
        provisional=[{"code": 180, "at": T0.isoformat()}], invite_at=T0, first_provisional_at=T0,
        answer_at=T0 + timedelta(seconds=1), end_at=T0 + timedelta(seconds=4), duration_s=3.0, hangup_by="local",
        outcome=Outcome.ANSWERED,
    )


def test_a_spooled_outcome_is_whole_on_disk_and_reads_back_the_same(db: Any, tmp_path: Path) -> None:
    job = claimed(db)
    path = spool.write(tmp_path, job, "host:101", [answered_row()], ANSWERED, undo_attempt=False)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
    assert spool.read(path) == (job, "host:101", [answered_row()], ANSWERED, False)


def test_replay_writes_the_outcome_once_even_when_replayed_twice(db: Any, pool: ConnectionPool, tmp_path: Path) -> None:
    """The job still waits in `dialing` under the spooling worker: completed, one CDR row, the file gone."""
    job = claimed(db)
    spool.write(tmp_path, job, "host:101", [answered_row()], ANSWERED, undo_attempt=False)
    assert spool.replay(pool, tmp_path) == 1
    assert spool.pending(tmp_path) == []
    spool.write(tmp_path, job, "host:101", [answered_row()], ANSWERED, undo_attempt=False)  # a second copy
    assert spool.replay(pool, tmp_path) == 1
    assert db.execute("SELECT status, outcome, worker FROM dial_jobs WHERE id = %s", (job.job_id,)).fetchone() == (
        "completed", "answered", None)
    assert db.execute("SELECT count(*) FROM call_attempts WHERE job_id = %s", (job.job_id,)).fetchone() == (1,)


def test_replay_never_overwrites_a_job_claimed_again_but_keeps_the_call_record(
    db: Any, pool: ConnectionPool, tmp_path: Path
) -> None:
    """The reaper gave attempt 1 up and another worker holds attempt 2: its state stays; attempt 1's CDR is kept."""
    job = claimed(db)
    db.execute("UPDATE dial_jobs SET status = 'queued', worker = NULL, outcome = 'worker_lost' WHERE id = %s",
               (job.job_id,))
    again = store.claim(db, job.job_id, "host:202", 60.0)
    assert again is not None and again.attempt == 2
    spool.write(tmp_path, job, "host:101", [answered_row()], ANSWERED, undo_attempt=False)
    assert spool.replay(pool, tmp_path) == 1
    assert db.execute("SELECT status, worker, attempts FROM dial_jobs WHERE id = %s", (job.job_id,)).fetchone() == (
        "dialing", "host:202", 2)
    assert db.execute("SELECT attempt, outcome FROM call_attempts WHERE job_id = %s", (job.job_id,)).fetchall() == [
        (1, "answered")]


def test_replay_leaves_the_files_while_postgres_is_away(tmp_path: Path, db: Any) -> None:
    job = claimed(db)
    spool.write(tmp_path, job, "host:101", [answered_row()], ANSWERED, undo_attempt=False)
    dead = open_pool("postgresql://nobody@127.0.0.1:1/none", min_size=0, max_size=1, name="dead", wait=False)
    try:
        assert spool.replay(dead, tmp_path, timeout_s=0.5) == 0
    finally:
        dead.close()
    assert len(spool.pending(tmp_path)) == 1
