"""Batch upload against real Postgres: formats, rejects, duplicates, DNC, re-uploads, bad files."""

from __future__ import annotations

import codecs
import csv
import io
from pathlib import Path
from typing import Any

import psycopg
import pytest
from openpyxl import Workbook

from producer.upload import ingest_bytes, ingest_file
from shared.errors import BadUpload, ConfigError
from tests.support.factories import create_campaign

pytestmark = pytest.mark.integration

ROWS = [("张三", "13900000001", "C-1"), ("李四", "139 0000 0002", "C-2"), ("王五", "+86 139 0000 0003", "C-3")]


def write_csv(path: Path, rows: list[tuple[str, ...]], *, header: tuple[str, ...] = ("姓名", "手机号", "客户ID"),
              encoding: str = "utf-8", delimiter: str = ",") -> Path:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(out.getvalue().encode(encoding))
    return path


def jobs(db: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return db.execute("SELECT e164, status, outcome, metadata FROM dial_jobs ORDER BY e164").fetchall()


def counts(db: psycopg.Connection[Any], table: str) -> int:
    row = db.execute(f"SELECT count(*) FROM {table}".encode()).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def campaign(db: psycopg.Connection[Any]) -> str:
    create_campaign(db, "spring", state="draft")
    return "spring"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_each_encoding_and_delimiter_is_read(
    db: psycopg.Connection[Any], campaign: str, tmp_path: Path, encoding: str, delimiter: str
) -> None:
    """Chinese names survive every encoding; the metadata keeps the other columns by header."""
    path = write_csv(tmp_path / "list.csv", ROWS, encoding=encoding, delimiter=delimiter)
    summary = ingest_file(db, campaign, path)
    assert (summary.rows, summary.accepted, summary.rejected) == (3, 3, 0)
    assert summary.error_report is None
    assert jobs(db)[0] == ("+8613900000001", "pending", None, {"姓名": "张三", "客户ID": "C-1"})


@pytest.mark.parametrize("name", ["phone", "Mobile", "NUMBER", "tel", "手机", "手机号", "电话", "号码", " Phone "])
def test_every_phone_column_name(db: psycopg.Connection[Any], campaign: str, tmp_path: Path, name: str) -> None:
    """Each documented phone header name is found, whatever its case and spacing."""
    path = write_csv(tmp_path / "list.csv", ROWS, header=("name", name, "id"))
    assert ingest_file(db, campaign, path).accepted == 3


def test_phone_column_option(db: psycopg.Connection[Any], campaign: str, tmp_path: Path) -> None:
    """--phone-column picks a column whose name is not a phone name, and beats one that is."""
    path = write_csv(tmp_path / "list.csv", [("13900000001", "13900000009")], header=("phone", "备用"))
    summary = ingest_file(db, campaign, path, phone_column="备用")
    assert summary.phone_column == "备用"
    assert jobs(db)[0][0] == "+8613900000009"
    assert jobs(db)[0][3] == {"phone": "13900000001"}


def test_xlsx_is_streamed_with_numeric_cells(db: psycopg.Connection[Any], campaign: str, tmp_path: Path) -> None:
    """Numbers typed into Excel arrive as integers or floats; row numbers match the sheet."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["客户", "Mobile", "Since"])
    sheet.append(["张三", 13900000001, 2021])
    sheet.append(["李四", 13900000002.0, None])
    sheet.append([None, None, None])
    sheet.append(["坏", "12345", None])
    path = tmp_path / "list.xlsx"
    book.save(path)
    summary = ingest_file(db, campaign, path)
    assert (summary.format, summary.accepted, summary.rejected, summary.blank_rows) == ("XLSX workbook", 2, 1, 1)
    assert jobs(db)[0][3] == {"客户": "张三", "Since": "2021"}
    assert db.execute("SELECT row_number, raw_value FROM upload_rejects").fetchall() == [(5, "12345")]


def test_rejects_have_row_field_reason_and_neighbours_are_kept(
    db: psycopg.Connection[Any], campaign: str, tmp_path: Path
) -> None:
    """Each bad row is reported once, in the file beside the input and in upload_rejects."""
    rows = [("a", "13900000001", ""), ("b", "12345", ""), ("c", "", ""), ("d", "+85291234567", ""),
            ("e", "13900000002", "")]
    path = write_csv(tmp_path / "list.csv", rows)
    summary = ingest_file(db, campaign, path)
    assert (summary.accepted, summary.rejected) == (2, 3)
    assert summary.error_report == str(tmp_path / "list.csv.rejects.csv")
    report = list(csv.reader(io.StringIO((tmp_path / "list.csv.rejects.csv").read_text("utf-8-sig"))))
    assert report[0] == ["row", "field", "value", "reason"]
    assert [r[:3] for r in report[1:]] == [
        ["3", "手机号", "12345"], ["4", "手机号", ""], ["5", "手机号", "+85291234567"]
    ]
    assert "allowed regions" in report[3][3]
    stored = db.execute("SELECT row_number, field, reason FROM upload_rejects ORDER BY row_number").fetchall()
    assert [(r[0], r[1]) for r in stored] == [(3, "手机号"), (4, "手机号"), (5, "手机号")]
    upload = db.execute("SELECT rows, accepted, rejected, error_report FROM uploads").fetchone()
    assert upload == (5, 2, 3, summary.error_report)


def test_duplicates_in_file_and_in_campaign_are_counted_not_inserted(
    db: psycopg.Connection[Any], campaign: str, tmp_path: Path
) -> None:
    """The first occurrence in the file wins; a number the campaign has already is a duplicate."""
    first = write_csv(tmp_path / "one.csv", [("old", "13900000001", "")])
    ingest_file(db, campaign, first)
    rows = [("a", "13900000002", ""), ("b", "+8613900000002", ""), ("c", "13900000001", ""), ("d", "13900000003", "")]
    summary = ingest_file(db, campaign, write_csv(tmp_path / "two.csv", rows))
    assert (summary.rows, summary.accepted, summary.duplicates) == (4, 2, 2)
    assert counts(db, "dial_jobs") == 3
    assert [j[3].get("姓名") for j in jobs(db)] == ["old", "a", "d"]


def test_dnc_numbers_are_stored_skipped(db: psycopg.Connection[Any], campaign: str, tmp_path: Path) -> None:
    """A listed number is stored as skipped_dnc (never dialled) and counted as dnc."""
    db.execute("INSERT INTO dnc (e164) VALUES ('+8613900000002')")
    summary = ingest_file(db, campaign, write_csv(tmp_path / "list.csv", ROWS))
    assert (summary.accepted, summary.dnc) == (2, 1)
    assert jobs(db)[1][:3] == ("+8613900000002", "skipped_dnc", "skipped_dnc")


def test_reupload_adds_nothing_and_says_it_was_seen(db: psycopg.Connection[Any], campaign: str, tmp_path: Path) -> None:
    """The same bytes again add no job, and the summary names the earlier upload."""
    path = write_csv(tmp_path / "list.csv", ROWS)
    first = ingest_file(db, campaign, path)
    again = ingest_file(db, campaign, path)
    assert (again.accepted, again.duplicates) == (0, 3)
    assert again.sha256 == first.sha256
    assert [s["upload_id"] for s in again.seen_before] == [first.upload_id]
    assert counts(db, "dial_jobs") == 3


def test_ingest_bytes_puts_the_report_under_the_data_dir(
    db: psycopg.Connection[Any], campaign: str, tmp_path: Path
) -> None:
    """An HTTP upload has no folder: its report goes under <data dir>/rejects."""
    data = b"phone\n13900000001\nnope\n"
    summary = ingest_bytes(db, campaign, io.BytesIO(data), "web.csv", data_dir=tmp_path / "data")
    assert (summary.accepted, summary.rejected) == (1, 1)
    assert summary.error_report is not None
    assert Path(summary.error_report).parent == tmp_path / "data" / "rejects"


def test_report_falls_back_to_data_dir_when_beside_is_not_writable(
    db: psycopg.Connection[Any], campaign: str, tmp_path: Path
) -> None:
    """Where <file>.rejects.csv cannot be written (here: a folder is in the way), the data dir gets it."""
    path = write_csv(tmp_path / "list.csv", [("a", "bad", "")])
    (tmp_path / "list.csv.rejects.csv").mkdir()
    summary = ingest_file(db, campaign, path, data_dir=tmp_path / "data")
    assert summary.error_report is not None
    assert summary.error_report.startswith(str(tmp_path / "data" / "rejects"))
    assert "bad" in Path(summary.error_report).read_text("utf-8-sig")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "empty"),
        ("name,city\n张三,北京\n".encode(), "no phone column"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "binary"),
        ("phone,name\n13900000001,Müller\n".encode("utf-16-le"), "UTF-16"),
        ("phone,name\n13900000001,Ça ÿ\n".encode("latin-1"), "neither UTF-8 nor GBK"),
        (b"PK\x03\x04not really a workbook", "not a readable XLSX"),
    ],
)
def test_bad_files_fail_with_one_message_and_insert_nothing(
    db: psycopg.Connection[Any], campaign: str, tmp_path: Path, content: bytes, fragment: str
) -> None:
    """Unreadable files fail before the transaction: no upload, job or reject row."""
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(BadUpload, match=r"bad\.csv") as caught:
        ingest_file(db, campaign, path)
    assert fragment in str(caught.value)
    assert counts(db, "uploads") == counts(db, "dial_jobs") == counts(db, "upload_rejects") == 0


def test_late_encoding_error_inserts_nothing(db: psycopg.Connection[Any], campaign: str, tmp_path: Path) -> None:
    """A row far below a UTF-8 start that no encoding reads fails the whole upload before any insert."""
    path = tmp_path / "mixed.csv"
    body = "phone,name\n13900000000,张三\n".encode() + b"".join(f"139{i:08d},x\n".encode() for i in range(1, 30_000))
    path.write_bytes(body + "13900000001,张三\n".encode("gbk"))
    with pytest.raises(BadUpload, match="line 30002"):
        ingest_file(db, campaign, path)
    assert counts(db, "dial_jobs") == counts(db, "uploads") == 0


def test_failure_midway_rolls_back_everything(db: psycopg.Connection[Any], campaign: str, tmp_path: Path) -> None:
    """A database error in a late batch leaves no job, upload, reject or report behind."""
    rows = [("bad", "x", "")] + [(f"n{i}", f"139{i:08d}", "") for i in range(60_000)]  # two batches
    path = write_csv(tmp_path / "big.csv", rows)
    db.execute("ALTER TABLE dial_jobs ADD CONSTRAINT test_no_55000 CHECK (e164 <> '+8613900055000')")
    try:
        with pytest.raises(psycopg.errors.CheckViolation):
            ingest_file(db, campaign, path)
    finally:
        db.execute("ALTER TABLE dial_jobs DROP CONSTRAINT test_no_55000")
    assert counts(db, "dial_jobs") == counts(db, "uploads") == counts(db, "upload_rejects") == 0
    assert not (tmp_path / "big.csv.rejects.csv").exists()


def test_closed_campaign_takes_no_upload(db: psycopg.Connection[Any], tmp_path: Path) -> None:
    """A cancelled campaign refuses new numbers."""
    create_campaign(db, "old", state="cancelled")
    with pytest.raises(ConfigError, match="cancelled"):
        ingest_file(db, "old", write_csv(tmp_path / "list.csv", ROWS))


def test_bom_only_file_is_empty(db: psycopg.Connection[Any], campaign: str, tmp_path: Path) -> None:
    """A file with only a BOM and a newline is empty, not a file without a phone column."""
    path = tmp_path / "bom.csv"
    path.write_bytes(codecs.BOM_UTF8 + b"\r\n")
    with pytest.raises(BadUpload, match="empty"):
        ingest_file(db, campaign, path)


def test_progress_reaches_the_file_size(db: psycopg.Connection[Any], campaign: str, tmp_path: Path) -> None:
    """The progress callback counts bytes for CSV and ends at the file size (the CLI's bar reaches 100%)."""
    path = write_csv(tmp_path / "list.csv", ROWS)
    calls: list[tuple[int, int]] = []
    ingest_file(db, campaign, path, progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1] == (path.stat().st_size, path.stat().st_size)
