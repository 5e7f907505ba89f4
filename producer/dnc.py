"""The do-not-call list: numbers that are never dialled, whatever campaign holds them.

Numbers are normalised as uploads are (E.164, the default region for numbers
written without a country code) but with every region and number type
allowed: refusing to list a premium-rate or foreign number would only mean
it could be called. Listing a number also marks its jobs that have not been
dialled yet (pending, queued, retry_wait) ``skipped_dnc`` in every campaign;
the worker checks :func:`is_dnc` again right before each INVITE, which covers
a number listed while its job was already on its way.

Removing a number does not bring its skipped jobs back: a person who asked
not to be called is not re-queued by an undo; upload or enqueue them again.

The import streams a file through the upload's readers and validation, in one
transaction, with the same row-level error report beside the file (there is
no ``uploads`` row, so rejects go to the report only).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from psycopg import Connection, sql

from producer.upload.batches import Batch, iter_batches
from producer.upload.ingest import DEFAULT_DATA_DIR, ProgressFn, open_upload, pump
from producer.upload.report import RejectReport, report_path_beside, report_path_in
from producer.upload.sniff import header_key
from producer.upload.validate import NumberPolicy
from shared.errors import BadUpload
from shared.job_states import Move, sources

# Jobs the DNC list stops: exactly those the state machine lets go to skipped_dnc.
SKIPPABLE = tuple(sources(Move.SKIP_DNC))
REASON_COLUMNS = frozenset({"reason", "原因", "备注", "note"})
_STAGING = sql.Identifier("dnc_import_staging")


@dataclass(frozen=True)
class DncEntry:
    e164: str
    listed: bool
    reason: str | None = None
    added_at: datetime | None = None


@dataclass(frozen=True)
class DncAdded:
    e164: str
    added: bool  # False: it was listed already
    jobs_skipped: int


@dataclass(frozen=True)
class DncImportSummary:
    filename: str
    rows: int
    added: int
    already_listed: int
    rejected: int
    jobs_skipped: int
    error_report: str | None
    elapsed_s: float

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "elapsed_s": round(self.elapsed_s, 3)}


def normalise_for_dnc(raw: str, region: str) -> str:
    """E.164 of a number for the list; InvalidNumber says why it is not a number."""
    return NumberPolicy.any_number(region).normalise(raw).e164


def is_dnc(conn: Connection[Any], e164: str) -> bool:
    """Whether a stored (E.164) number is listed; the worker asks this right before each dial."""
    return conn.execute("SELECT EXISTS (SELECT 1 FROM dnc WHERE e164 = %s)", (e164,)).fetchone() == (True,)


def check_dnc(conn: Connection[Any], raw: str, *, region: str = "CN") -> DncEntry:
    e164 = normalise_for_dnc(raw, region)
    row = conn.execute("SELECT reason, added_at FROM dnc WHERE e164 = %s", (e164,)).fetchone()
    return DncEntry(e164, row is not None, *(row or (None, None)))


def add_dnc(conn: Connection[Any], raw: str, *, reason: str | None = None, region: str = "CN") -> DncAdded:
    """List a number and skip its not-yet-dialled jobs; a new reason replaces the old one."""
    e164 = normalise_for_dnc(raw, region)
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO dnc (e164, reason) VALUES (%s, %s)"
            " ON CONFLICT (e164) DO UPDATE SET reason = coalesce(EXCLUDED.reason, dnc.reason)"
            " RETURNING xmax = 0",
            (e164, reason),
        ).fetchone()
        skipped = conn.execute(
            "UPDATE dial_jobs SET status = 'skipped_dnc', outcome = 'skipped_dnc', updated_at = now()"
            " WHERE e164 = %s AND status = ANY(%s)",
            (e164, list(SKIPPABLE)),
        ).rowcount
    return DncAdded(e164, bool(row and row[0]), skipped)


def remove_dnc(conn: Connection[Any], raw: str, *, region: str = "CN") -> tuple[str, bool]:
    """Unlist a number; returns (e164, whether it was listed). Skipped jobs stay skipped."""
    e164 = normalise_for_dnc(raw, region)
    deleted = conn.execute("DELETE FROM dnc WHERE e164 = %s", (e164,)).rowcount
    return e164, deleted > 0


def import_dnc(
    conn: Connection[Any], path: str | Path, *, reason: str | None = None, phone_column: str | None = None,
    region: str = "CN", progress: ProgressFn | None = None, data_dir: Path = DEFAULT_DATA_DIR,
) -> DncImportSummary:
    """List every valid number of a CSV/XLSX file; a ``reason`` column, where present, wins over ``reason``."""
    started = time.perf_counter()
    path = Path(path)
    policy = NumberPolicy.any_number(region)
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise BadUpload(f"{path}: cannot open the file: {exc.strerror}") from None
    fallback = report_path_in(data_dir, int(time.time()), f"dnc-{path.name}")
    with stream, open_upload(stream, path.name, phone_column) as parsed:
        reason_key = _reason_key(parsed.table.header, parsed.columns.phone)
        report = RejectReport(report_path_beside(path), fallback)
        try:
            with conn.transaction():
                conn.execute(sql.SQL(
                    "CREATE TEMP TABLE IF NOT EXISTS {} (row_number integer, e164 text, metadata jsonb)"
                    " ON COMMIT DROP").format(_STAGING))

                def write(batch: Batch) -> dict[str, int]:
                    return _write_batch(conn, batch, reason_key, reason)

                counts = pump(iter_batches(parsed.table.rows, parsed.columns, policy), write, report.add,
                              lambda: progress(*parsed.table.progress()) if progress else None)
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(_STAGING))
        except BaseException:
            report.discard()
            raise
    added = counts.written.get("added", 0)
    return DncImportSummary(
        filename=path.name, rows=counts.rows, added=added, already_listed=counts.valid - added,
        rejected=counts.rejected, jobs_skipped=counts.written.get("jobs_skipped", 0),
        error_report=report.close(), elapsed_s=time.perf_counter() - started,
    )


def _reason_key(header: list[str], phone: int) -> str | None:
    """The metadata key of the file's reason column, if it has one."""
    for index, name in enumerate(header):
        if index != phone and header_key(name) in REASON_COLUMNS:
            return name.strip()
    return None


def _write_batch(conn: Connection[Any], batch: Batch, reason_key: str | None, reason: str | None) -> dict[str, int]:
    if not batch.valid:
        return {}
    with conn.cursor().copy(sql.SQL("COPY {} (row_number, e164, metadata) FROM STDIN").format(_STAGING)) as copy:
        copy.write(batch.copy_text)
    row = conn.execute(
        sql.SQL(
            "WITH ins AS ("
            " INSERT INTO dnc (e164, reason)"
            " SELECT e164, coalesce(nullif(metadata ->> %(key)s, ''), %(reason)s) FROM {staging}"
            " ORDER BY row_number ON CONFLICT (e164) DO NOTHING RETURNING 1),"
            " upd AS ("
            " UPDATE dial_jobs j SET status = 'skipped_dnc', outcome = 'skipped_dnc', updated_at = now()"
            " FROM {staging} s WHERE j.e164 = s.e164 AND j.status = ANY(%(skippable)s) RETURNING 1)"
            " SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM upd)"
        ).format(staging=_STAGING),
        {"key": reason_key or "", "reason": reason, "skippable": list(SKIPPABLE)},
    ).fetchone()
    conn.execute(sql.SQL("TRUNCATE {}").format(_STAGING))
    assert row is not None
    return {"added": int(row[0]), "jobs_skipped": int(row[1])}
