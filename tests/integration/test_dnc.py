"""The do-not-call list against real Postgres: listing skips waiting jobs everywhere, imports stream."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import psycopg
import pytest

from producer.dnc import add_dnc, check_dnc, import_dnc, is_dnc, remove_dnc
from producer.upload.single import enqueue_number
from shared.errors import BadUpload, InvalidNumber
from tests.support.factories import add_jobs, create_campaign

pytestmark = pytest.mark.integration

NUMBER = "+8613900000001"


def statuses(db: psycopg.Connection[Any]) -> dict[int, tuple[str, str | None]]:
    return {row[0]: (row[1], row[2]) for row in db.execute("SELECT id, status, outcome FROM dial_jobs")}


def test_add_marks_waiting_jobs_in_every_campaign_and_spares_the_rest(db: psycopg.Connection[Any]) -> None:
    """pending, queued and retry_wait jobs become skipped_dnc; dialing and finished jobs do not change."""
    ids = {}
    for status in ("pending", "queued", "retry_wait", "dialing", "completed"):
        campaign = create_campaign(db, f"campaign-{status}")
        ids[status] = add_jobs(db, campaign, [NUMBER], status=status)[0]
    first = create_campaign(db, "other")
    other = add_jobs(db, first, ["+8613900000002"])[0]
    added = add_dnc(db, "139 0000 0001", reason="asked us")
    assert (added.e164, added.added, added.jobs_skipped) == (NUMBER, True, 3)
    after = statuses(db)
    assert {s: after[i][0] for s, i in ids.items()} == {
        "pending": "skipped_dnc", "queued": "skipped_dnc", "retry_wait": "skipped_dnc",
        "dialing": "dialing", "completed": "completed",
    }
    assert after[ids["pending"]][1] == "skipped_dnc"
    assert after[other] == ("pending", None)
    assert is_dnc(db, NUMBER) and not is_dnc(db, "+8613900000002")


def test_add_twice_keeps_one_entry_and_remove_unlists(db: psycopg.Connection[Any]) -> None:
    """Listing twice keeps one entry and its first reason; removing is idempotent."""
    add_dnc(db, NUMBER, reason="first")
    again = add_dnc(db, "13900000001")
    assert not again.added
    entry = check_dnc(db, "13900000001")
    assert (entry.listed, entry.reason) == (True, "first")
    assert remove_dnc(db, NUMBER) == (NUMBER, True)
    assert remove_dnc(db, NUMBER) == (NUMBER, False)
    assert not check_dnc(db, NUMBER).listed


def test_foreign_and_premium_numbers_can_be_listed(db: psycopg.Connection[Any]) -> None:
    """The list takes any valid number: refusing one would only mean it could be called."""
    assert add_dnc(db, "+442079460000").e164 == "+442079460000"
    with pytest.raises(InvalidNumber):
        add_dnc(db, "12345")


def test_import_streams_a_file_with_reasons_and_row_rejects(db: psycopg.Connection[Any], tmp_path: Path) -> None:
    """A reason column wins over --reason; bad rows are reported; waiting jobs are skipped."""
    campaign = create_campaign(db, "a")
    job = add_jobs(db, campaign, ["+8613900000002"])[0]
    add_dnc(db, "+8613900000003")
    path = tmp_path / "dnc.csv"
    with path.open("w", encoding="gbk", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["号码", "原因"])
        writer.writerows([["13900000001", "投诉"], ["13900000002", ""], ["oops", "x"], ["13900000003", ""],
                          ["13900000001", "again"]])
    summary = import_dnc(db, path, reason="list from legal")
    assert (summary.rows, summary.added, summary.already_listed, summary.rejected) == (5, 2, 2, 1)
    assert summary.jobs_skipped == 1
    assert statuses(db)[job] == ("skipped_dnc", "skipped_dnc")
    reasons = dict(db.execute("SELECT e164, reason FROM dnc").fetchall())
    assert reasons == {"+8613900000001": "投诉", "+8613900000002": "list from legal", "+8613900000003": None}
    assert summary.error_report == str(tmp_path / "dnc.csv.rejects.csv")
    assert "4,号码,oops" in (tmp_path / "dnc.csv.rejects.csv").read_text("utf-8-sig")


def test_import_of_a_bad_file_lists_nothing(db: psycopg.Connection[Any], tmp_path: Path) -> None:
    """A file without a phone column fails whole."""
    path = tmp_path / "dnc.csv"
    path.write_text("name\nzhang\n")
    with pytest.raises(BadUpload, match="no phone column"):
        import_dnc(db, path)
    assert db.execute("SELECT count(*) FROM dnc").fetchone() == (0,)


def test_enqueue_is_idempotent_and_respects_dnc(db: psycopg.Connection[Any]) -> None:
    """One job per number; a listed number goes in skipped; a naive time is in the campaign's zone."""
    create_campaign(db, "a", state="draft", tz="Asia/Shanghai")
    first = enqueue_number(db, "a", "13900000001", at="2030-06-01T09:30")
    assert first.created and first.status == "pending"
    assert first.due_at.isoformat() == "2030-06-01T01:30:00+00:00"
    again = enqueue_number(db, "a", "+86 139 0000 0001", at="2031-01-01T00:00+08:00")
    assert (again.created, again.job_id, again.due_at) == (False, first.job_id, first.due_at)
    add_dnc(db, "13900000009")
    listed = enqueue_number(db, "a", "13900000009")
    assert (listed.created, listed.status) == (True, "skipped_dnc")
