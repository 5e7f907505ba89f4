"""Finished calls whose outcome Postgres could not take in time: kept on local disk, written later.

Why: on SIGTERM during a Postgres outage the supervisor kills its children
after the grace, while their finished calls wait for the database; killed,
those answered calls would become ``worker_lost`` and be dialled again. So a
task that must stop waiting writes its outcome here (``DIALER_DATA_DIR/spool``,
one JSON file per attempt, fsync-ed and renamed into place, so a file is
either whole or absent) and the next worker process that starts on this host,
or any worker here while Postgres is back, writes it through
:func:`worker.store.finish`.

Why a replay can never call anyone twice or overwrite a newer truth:

* every CDR row is inserted ``ON CONFLICT (job_id, attempt, try_index) DO
  NOTHING``: replaying a file twice, or after the task itself got through,
  adds nothing;
* the job's state changes only if it is still ``dialing`` under this
  attempt's worker name (the lease fence), or if the reaper recorded this very
  attempt ``worker_lost`` and nobody claimed the job since (``finish``'s
  overrule): then the real outcome replaces the reaper's guess before the
  retry it scheduled is dialled;
* the rule that keeps the reaper from turning a spooled attempt into a second
  call: the reaper takes a job only once its lease plus
  ``DIALER_LEASE_GRACE_S`` has passed, and then only schedules a retry after
  the campaign's ``worker_lost`` delay. A spooled outcome replayed before that
  retry is claimed wins. So restart a stopped worker host (compose does) within
  lease + grace + worker_lost delay of Postgres coming back; past that the
  job may be dialled again and the replayed CDR rows still record the call
  that was made.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from shared.job_states import JobStatus
from shared.outcomes import Outcome
from shared.retry_policy import JobDecision
from worker import store

log = logging.getLogger(__name__)

_DATETIME_FIELDS = {f.name for f in dataclasses.fields(store.ClaimedJob) if "datetime" in str(f.type)}
_TRY_DATETIME_FIELDS = {f.name for f in dataclasses.fields(store.TryRow) if "datetime" in str(f.type)}


def spool_dir(data_dir: Path) -> Path:
    return data_dir / "spool"


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot spool {type(value).__name__}")


def _dates(raw: dict[str, Any], names: set[str]) -> dict[str, Any]:
    return {k: (datetime.fromisoformat(v) if k in names and isinstance(v, str) else v) for k, v in raw.items()}


def write(
    folder: Path, job: store.ClaimedJob, worker: str, rows: list[store.TryRow], decision: JobDecision,
    *, undo_attempt: bool,
) -> Path:
    """One attempt's outcome as ``job-<id>-attempt-<n>.json``, durable before this returns."""
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "job": dataclasses.asdict(job), "worker": worker, "undo_attempt": undo_attempt,
        "rows": [{**dataclasses.asdict(r), "outcome": r.outcome.value} for r in rows],
        "decision": {"status": decision.status.value, "outcome": decision.outcome.value,
                     "next_attempt_at": decision.next_attempt_at},
    }
    path = folder / f"job-{job.job_id}-attempt-{job.attempt}.json"
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as out:
        json.dump(record, out, default=_encode)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself survives a power cut
    finally:
        os.close(fd)
    return path


def read(path: Path) -> tuple[store.ClaimedJob, str, list[store.TryRow], JobDecision, bool]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    job = store.ClaimedJob(**_dates(raw["job"], _DATETIME_FIELDS))
    rows = [store.TryRow(**{**_dates(r, _TRY_DATETIME_FIELDS), "outcome": Outcome(r["outcome"])})
            for r in raw["rows"]]
    d = raw["decision"]
    next_at = datetime.fromisoformat(d["next_attempt_at"]) if d["next_attempt_at"] else None
    decision = JobDecision(JobStatus(d["status"]), Outcome(d["outcome"]), next_at)
    return job, str(raw["worker"]), rows, decision, bool(raw["undo_attempt"])


def pending(folder: Path) -> list[Path]:
    return sorted(folder.glob("job-*-attempt-*.json")) if folder.is_dir() else []


def replay(pool: ConnectionPool, folder: Path, *, timeout_s: float = 5.0) -> int:
    """Write every spooled outcome Postgres will take now; returns how many files were settled.

    A file is removed once its transaction committed (whether the job still
    waited for it or had moved on: its CDR rows are in either way). Postgres
    still away: the files stay for the next try.
    """
    settled = 0
    for path in pending(folder):
        try:
            job, worker, rows, decision, undo = read(path)
        except (OSError, ValueError, KeyError, TypeError):
            log.exception("spooled outcome %s cannot be read; moved aside", path.name)
            path.rename(path.with_suffix(".unreadable"))
            continue
        try:
            with pool.connection(timeout=timeout_s) as conn:
                applied = store.finish(conn, job, worker, rows, decision, undo_attempt=undo)
        except psycopg.OperationalError:
            log.warning("Postgres still unavailable: %d spooled outcome(s) wait in %s", len(pending(folder)), folder)
            return settled
        path.unlink(missing_ok=True)
        settled += 1
        if applied:
            log.warning("job %s: spooled outcome %s of attempt %s written", job.job_id, decision.outcome.value,
                        job.attempt)
        else:
            log.warning("job %s: spooled attempt %s recorded (%d CDR rows); the job had moved on, state kept",
                        job.job_id, job.attempt, len(rows))
    return settled
