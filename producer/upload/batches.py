"""Rows to batches: validation results gathered into COPY-ready chunks and reject lists.

Pure (no database, no files): the ingest feeds the batches to Postgres, the
DNC import does the same with another target, and the tests fuzz this with
arbitrary input. A batch carries its rows as COPY text (``row\\te164\\tjson``),
built here with string joins rather than one ``write_row`` call a row,
because per-row Python work is what limits an upload of a million rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from producer.upload.readers import SourceRow
from producer.upload.validate import Accepted, Columns, NumberPolicy, Reject, check_row

BATCH_ROWS = 50_000  # ~5 MB of COPY text; larger batches measured no faster
ROW_FIELD = "(row)"  # the field named in a reject that concerns the whole row


@dataclass(slots=True)
class Batch:
    """Up to BATCH_ROWS data rows: the valid ones as COPY text, the refused ones as rejects."""

    copy_text: bytes = b""
    valid: int = 0
    rows: int = 0  # data rows seen (valid + rejected), blank rows excluded
    blank: int = 0
    rejects: list[Reject] = field(default_factory=list)
    last_row: int = 0


def copy_line(accepted: Accepted) -> str:
    """One line of COPY text format; JSON never holds a raw tab or newline, only backslashes."""
    return f"{accepted.row}\t{accepted.e164}\t{accepted.metadata.replace(chr(92), chr(92) * 2)}\n"


def iter_batches(
    rows: Iterable[SourceRow], columns: Columns, policy: NumberPolicy, *, size: int = BATCH_ROWS
) -> Iterator[Batch]:
    """Validate rows and yield them in batches of at most ``size`` data rows; the last may be empty."""
    lines: list[str] = []
    batch = Batch()
    for row in rows:
        batch.last_row = row.number
        if row.error is not None:
            batch.rows += 1
            batch.rejects.append(Reject.make(row.number, ROW_FIELD, "", row.error))
        elif row.is_blank():
            batch.blank += 1
            continue
        else:
            batch.rows += 1
            verdict = check_row(row.number, row.cells, columns, policy)
            if isinstance(verdict, Reject):
                batch.rejects.append(verdict)
            else:
                lines.append(copy_line(verdict))
        if batch.rows >= size:
            yield _close(batch, lines)
            lines, batch = [], Batch()
    yield _close(batch, lines)


def _close(batch: Batch, lines: list[str]) -> Batch:
    batch.copy_text = "".join(lines).encode()
    batch.valid = len(lines)
    return batch
