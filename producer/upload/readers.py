"""Stream the rows of an upload, CSV or XLSX, one at a time, numbered as the spreadsheet shows them.

Memory stays flat whatever the file size: CSV goes through ``csv.reader`` over
a decoding text wrapper, XLSX through openpyxl's read-only mode, which parses
the sheet XML as it goes. Row numbers are the ones a person sees in Excel or
WPS (the header is usually row 1; blank rows count), because that is where
they will go to fix a rejected row.

:func:`prescan` reads the whole file once before anything is inserted: it
hashes it (re-uploads are recognised by sha256) and, for text, decodes every
byte, so an encoding error on line 900,000 is reported before the first row
is written rather than after half the campaign was loaded.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime as dt
import hashlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from producer.upload.sniff import Sniffed
from shared.errors import BadUpload

_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One row: its spreadsheet number and cells, or why it could not be split into cells."""

    number: int
    cells: list[str]
    error: str | None = None

    def is_blank(self) -> bool:
        return self.error is None and not any(cell.strip() for cell in self.cells)


@dataclass
class Table:
    """An open upload: its header and an iterator over the data rows after it."""

    header: list[str]
    header_row: int
    rows: Iterator[SourceRow]
    progress: Callable[[], tuple[int, int]] = field(default=lambda: (0, 0))


def prescan(stream: IO[bytes], sniffed: Sniffed, filename: str) -> str:
    """Hash the whole file and, for text, check that every byte decodes; returns the sha256 hex.

    Leaves the stream at its start. Raises BadUpload naming the line of the
    first byte that is not valid in the sniffed encoding.
    """
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder(sniffed.encoding)("strict") if sniffed.kind == "csv" else None
    lines = 0
    stream.seek(0)
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
        if decoder is None:
            continue
        try:
            lines += decoder.decode(chunk).count("\n")
        except UnicodeDecodeError as exc:
            before = chunk[: max(exc.start, 0)].decode(sniffed.encoding, errors="replace").count("\n")
            raise BadUpload(
                f"{filename}: line {lines + before + 1} is not valid {_encoding_name(sniffed.encoding)} "
                f"although the start of the file is; nothing was imported. Save the whole file as "
                "'CSV UTF-8' and upload again"
            ) from None
    if decoder is not None:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise BadUpload(
                f"{filename}: the file ends in the middle of a {_encoding_name(sniffed.encoding)} "
                "character (truncated?); nothing was imported"
            ) from None
    stream.seek(0)
    return digest.hexdigest()


def _encoding_name(encoding: str) -> str:
    return {"gb18030": "GBK/GB18030", "utf-8-sig": "UTF-8", "utf-8": "UTF-8", "utf-16": "UTF-16"}.get(
        encoding, encoding
    )


@contextlib.contextmanager
def open_table(stream: IO[bytes], sniffed: Sniffed, filename: str) -> Iterator[Table]:
    """Open a prescanned upload and find its header row (the first row that is not blank)."""
    stream.seek(0, io.SEEK_END)
    total = stream.tell()
    stream.seek(0)
    if sniffed.kind == "xlsx":
        with _open_xlsx(stream, filename) as rows_and_total:
            rows, xlsx_total, done = rows_and_total
            yield _with_header(rows, filename, lambda: (done[0], max(xlsx_total, done[0])))
        return
    text = io.TextIOWrapper(stream, encoding=sniffed.encoding, errors="strict", newline="")
    try:
        rows = _csv_rows(text, sniffed.delimiter, filename)
        yield _with_header(rows, filename, lambda: (min(stream.tell(), total), total))
    finally:
        text.detach()  # the caller owns the stream


def _with_header(rows: Iterator[SourceRow], filename: str, progress: Callable[[], tuple[int, int]]) -> Table:
    for row in rows:
        if row.error is None and not row.is_blank():
            return Table([cell.strip() for cell in row.cells], row.number, rows, progress)
    raise BadUpload(f"{filename}: the file has no rows; upload a file with a header row and one number a row")


def _csv_rows(text: IO[str], delimiter: str, filename: str) -> Iterator[SourceRow]:
    reader = csv.reader(text, delimiter=delimiter)
    number = 0
    while True:
        number += 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield SourceRow(number, [], f"the row cannot be split into cells: {exc}")
            continue
        except UnicodeDecodeError:
            # prescan() decoded every byte already; only a file changed under us gets here.
            raise BadUpload(f"{filename}: at or after row {number}: bytes that are not valid text; "
                            "nothing was imported") from None
        yield SourceRow(number, cells)


@contextlib.contextmanager
def _open_xlsx(
    stream: IO[bytes], filename: str
) -> Iterator[tuple[Iterator[SourceRow], int, list[int]]]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(stream, read_only=True, data_only=True)
    # openpyxl raises whatever its zip and XML layers raise on a damaged file; all mean the same here.
    except Exception:
        raise BadUpload(
            f"{filename}: not a readable XLSX workbook (damaged, encrypted, or another zip file); "
            "open it in the spreadsheet, save as XLSX or 'CSV UTF-8', and upload again"
        ) from None
    try:
        sheet = book.active if book.active is not None else book.worksheets[0]
        estimated = int(sheet.max_row or 0)
        # Writers often record wrong dimensions; reading without them never drops rows.
        sheet.reset_dimensions()
        done = [0]
        yield _xlsx_rows(sheet, filename, done), estimated, done
    finally:
        book.close()


def _xlsx_rows(sheet: Any, filename: str, done: list[int]) -> Iterator[SourceRow]:
    number = 0
    try:
        for values in sheet.iter_rows(values_only=True):
            number += 1
            done[0] = number
            yield SourceRow(number, [cell_text(value) for value in values])
    except BadUpload:
        raise
    except Exception:  # see _open_xlsx: a damaged sheet can fail in any layer
        raise BadUpload(f"{filename}: the workbook is damaged at or after row {number + 1}; "
                        "nothing was imported") from None


def cell_text(value: object) -> str:
    """A spreadsheet cell as the text a person sees: 13900001111, not 13900001111.0."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value)
