"""Upload a campaign's list: check the file, stream its rows, store jobs, report rejects.

Order of work, and why:

1. **Before any insert**: sniff the format, decode every byte and hash the file
   (:func:`~producer.upload.readers.prescan`), find the phone column. A file
   that cannot be read fails here with one BadUpload and the database is
   untouched.
2. **One transaction** for the rest: the ``uploads`` row, every job, every
   reject. A failure late in a huge file rolls all of it back, so an upload
   either happened or did not.
3. **Two threads**: this one parses and validates (Python-bound), a writer
   thread COPYs and inserts (Postgres-bound, the GIL released while it waits),
   through a queue of two batches, so both cores work and memory stays flat.
   The connection belongs to the writer thread until it is joined.
"""

from __future__ import annotations

import contextlib
import io
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Any, BinaryIO

from psycopg import Connection

from producer.campaigns import Campaign, get_campaign
from producer.upload.batches import Batch, iter_batches
from producer.upload.readers import Table, open_table, prescan
from producer.upload.report import RejectReport, report_path_beside, report_path_in
from producer.upload.sniff import SAMPLE_BYTES, Sniffed, find_phone_column, sniff
from producer.upload.store import UploadStore, earlier_uploads
from producer.upload.validate import Columns, Reject
from shared.errors import BadUpload, ConfigError
from shared.flow import Flow, FlowError, check_columns
from shared.metrics import UPLOAD_ROWS
from shared.settings import Settings

ProgressFn = Callable[[int, int], None]  # (done, total) in bytes for CSV, rows for XLSX
DEFAULT_DATA_DIR: Path = Settings.model_fields["data_dir"].default
_OPEN_STATES = frozenset({"draft", "running", "paused"})


@dataclass(frozen=True)
class UploadSummary:
    """What an upload did; ``rows`` = accepted + duplicates + dnc + rejected."""

    upload_id: int
    campaign: str
    filename: str
    sha256: str
    format: str
    phone_column: str
    rows: int
    accepted: int
    duplicates: int
    dnc: int
    rejected: int
    blank_rows: int
    error_report: str | None
    seen_before: list[dict[str, Any]] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def rows_per_s(self) -> float:
        return round(self.rows / self.elapsed_s, 1) if self.elapsed_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "elapsed_s": round(self.elapsed_s, 3), "rows_per_s": self.rows_per_s}


@dataclass(frozen=True)
class ParsedUpload:
    """An upload that passed every check that needs no database: ready to stream."""

    filename: str
    sniffed: Sniffed
    sha256: str
    table: Table
    columns: Columns


@dataclass
class PumpCounts:
    """Rows seen by the parser, and the sums of what the writer reported for each batch."""

    rows: int = 0
    blank: int = 0
    valid: int = 0
    rejected: int = 0
    written: dict[str, int] = field(default_factory=dict)


def ingest_file(
    conn: Connection[Any], campaign_name: str, path: str | Path, *, phone_column: str | None = None,
    progress: ProgressFn | None = None, data_dir: Path = DEFAULT_DATA_DIR,
) -> UploadSummary:
    """Upload a CSV or XLSX file to a campaign; the error report goes beside it when there are rejects."""
    path = Path(path)
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise BadUpload(f"{path}: cannot open the file: {exc.strerror}") from None
    with stream:
        return _ingest(conn, campaign_name, stream, path.name, phone_column, progress,
                       report_beside=report_path_beside(path), data_dir=data_dir)


def ingest_bytes(
    conn: Connection[Any], campaign_name: str, data: bytes | BinaryIO, filename: str, *,
    phone_column: str | None = None, progress: ProgressFn | None = None, data_dir: Path = DEFAULT_DATA_DIR,
) -> UploadSummary:
    """Upload from memory or a stream (the HTTP API's multipart file); the report goes under ``data_dir``."""
    with _seekable(data) as stream:
        return _ingest(conn, campaign_name, stream, Path(filename).name or "upload", phone_column, progress,
                       report_beside=None, data_dir=data_dir)


@contextlib.contextmanager
def open_upload(stream: IO[bytes], filename: str, phone_column: str | None) -> Iterator[ParsedUpload]:
    """Every check that needs no database, in order; yields the upload ready to stream."""
    sample = stream.read(SAMPLE_BYTES)
    sniffed, sha256 = _prescan(stream, sniff(sample, filename), sample, filename)
    with open_table(stream, sniffed, filename) as table:
        phone = find_phone_column(table.header, phone_column, filename)
        yield ParsedUpload(filename, sniffed, sha256, table, Columns.from_header(table.header, phone))


def _prescan(stream: IO[bytes], sniffed: Sniffed, sample: bytes, filename: str) -> tuple[Sniffed, str]:
    """Prescan as sniffed; an all-ASCII sample that turns out not to be UTF-8 gets one try as GBK.

    An ASCII start proves nothing: a GBK export may hold its first Chinese name far down the file.
    """
    try:
        return sniffed, prescan(stream, sniffed, filename)
    except BadUpload as first:
        if sniffed.encoding != "utf-8" or not sample.isascii():
            raise
        fallback = replace(sniffed, encoding="gb18030")
        try:
            return fallback, prescan(stream, fallback, filename)
        except BadUpload:
            raise first from None


def _ingest(
    conn: Connection[Any], campaign_name: str, stream: IO[bytes], filename: str, phone_column: str | None,
    progress: ProgressFn | None, *, report_beside: Path | None, data_dir: Path,
) -> UploadSummary:
    started = time.perf_counter()
    campaign = get_campaign(conn, campaign_name)
    if campaign.state not in _OPEN_STATES:
        raise ConfigError(f"campaign {campaign.name!r} is {campaign.state}: it takes no more uploads")
    policy = campaign.number_policy()
    report: RejectReport | None = None
    with open_upload(stream, filename, phone_column) as parsed:
        _check_flow_columns(campaign, parsed.table.header, filename)
        try:
            with conn.transaction():
                store = UploadStore.begin(conn, campaign.id, filename, parsed.sha256)
                report = RejectReport(report_beside, report_path_in(data_dir, store.upload_id, filename))
                counts = pump(iter_batches(parsed.table.rows, parsed.columns, policy), store.write, report.add,
                              lambda: _report_progress(progress, parsed.table))
                error_report = report.close()
                store.finish(_db_counts(counts), error_report)
                seen = earlier_uploads(conn, campaign.id, parsed.sha256, store.upload_id)
        except BaseException:
            if report is not None:
                report.discard()  # the upload never happened; neither did its rejects
            raise
    _count_metrics(counts)
    return _summary(campaign, parsed, store.upload_id, counts, error_report, seen, time.perf_counter() - started)


def _check_flow_columns(campaign: Campaign, header: Sequence[str], filename: str) -> None:
    """The campaign's say texts may only name columns this file has: one BadUpload before any row is stored."""
    if campaign.flow is None:
        return
    try:
        check_columns(Flow.from_json(campaign.flow), (name.strip().replace("\ufeff", "") for name in header),
                      where=f"campaign {campaign.name!r} flow")
    except FlowError as exc:
        raise BadUpload(f"{filename}: {exc}") from None


def pump(
    batches: Iterator[Batch], write: Callable[[Batch], Mapping[str, int]],
    on_rejects: Callable[[list[Reject]], None], tick: Callable[[], None],
) -> PumpCounts:
    """Parse on this thread, write on a second one; the first error on either side stops both and is raised."""
    pending: queue.Queue[Batch | None] = queue.Queue(maxsize=2)
    counts = PumpCounts()
    failed: list[BaseException] = []

    def writer() -> None:
        while (batch := pending.get()) is not None:
            if failed:
                continue  # drain, so the parser never blocks on a dead writer
            try:
                written = write(batch)
            except BaseException as exc:  # handed to the parsing thread, which raises it
                failed.append(exc)
                continue
            for key, value in written.items():
                counts.written[key] = counts.written.get(key, 0) + value

    thread = threading.Thread(target=writer, name="upload-writer", daemon=True)
    thread.start()
    try:
        for batch in batches:
            counts.rows += batch.rows
            counts.blank += batch.blank
            counts.valid += batch.valid
            counts.rejected += len(batch.rejects)
            on_rejects(batch.rejects)
            pending.put(batch)
            tick()
            if failed:
                break
    finally:
        pending.put(None)
        thread.join()
    if failed:
        raise failed[0]
    return counts


def _report_progress(progress: ProgressFn | None, table: Table) -> None:
    if progress is not None:
        progress(*table.progress())


def _db_counts(counts: PumpCounts) -> dict[str, int]:
    accepted, dnc = counts.written.get("accepted", 0), counts.written.get("dnc", 0)
    return {"rows": counts.rows, "accepted": accepted, "duplicates": counts.valid - accepted - dnc, "dnc": dnc,
            "rejected": counts.rejected}


def _count_metrics(counts: PumpCounts) -> None:
    for result, value in _db_counts(counts).items():
        if result != "rows" and value:
            UPLOAD_ROWS.labels(result=result).inc(value)


def _summary(
    campaign: Campaign, parsed: ParsedUpload, upload_id: int, counts: PumpCounts, error_report: str | None,
    seen: list[dict[str, Any]], elapsed: float,
) -> UploadSummary:
    db = _db_counts(counts)
    return UploadSummary(
        upload_id=upload_id, campaign=campaign.name, filename=parsed.filename, sha256=parsed.sha256,
        format=parsed.sniffed.describe(), phone_column=parsed.columns.phone_name, rows=db["rows"],
        accepted=db["accepted"], duplicates=db["duplicates"], dnc=db["dnc"], rejected=db["rejected"],
        blank_rows=counts.blank, error_report=error_report, seen_before=seen, elapsed_s=elapsed,
    )


@contextlib.contextmanager
def _seekable(data: bytes | BinaryIO) -> Iterator[IO[bytes]]:
    """A seekable binary stream over bytes or any stream; a non-seekable one is spooled to disk first."""
    if isinstance(data, bytes | bytearray | memoryview):
        yield io.BytesIO(bytes(data))
    elif data.seekable():
        data.seek(0)
        yield data
    else:
        with tempfile.SpooledTemporaryFile(max_size=16 << 20) as spool:
            shutil.copyfileobj(data, spool, 1 << 20)
            spool.seek(0)
            yield spool


__all__ = ["ParsedUpload", "PumpCounts", "UploadSummary", "ingest_bytes", "ingest_file", "open_upload", "pump"]
