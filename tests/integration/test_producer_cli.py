"""The producer's commands end to end through the real `dialer` Typer app and a real database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner, Result

import shared.cli
from shared.errors import BadUpload, ConfigError

pytestmark = pytest.mark.integration

_registered: list[bool] = []


@pytest.fixture
def run(database_url: str, db: psycopg.Connection[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Invoke `dialer ...` against the emptied test database; returns the click Result."""
    if not _registered:
        shared.cli._register_commands()
        _registered.append(True)
    monkeypatch.setenv("DIALER_DATABASE_URL", database_url)
    monkeypatch.setenv("DIALER_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(shared.cli.app, list(args))

    return invoke


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def test_every_command_has_help(run: Any) -> None:
    """Every producer command explains itself with --help."""
    for command in (["campaign", "create"], ["campaign", "start"], ["campaign", "pause"], ["campaign", "resume"],
                    ["campaign", "cancel"], ["campaign", "status"], ["campaign", "list"], ["upload"], ["enqueue"],
                    ["dnc", "add"], ["dnc", "remove"], ["dnc", "check"], ["dnc", "import"]):
        text = ok(run(*command, "--help"))
        assert "Usage:" in text and len(text.splitlines()) > 5


def test_campaign_lifecycle(run: Any, db: psycopg.Connection[Any]) -> None:
    """create, start, pause, resume, list and cancel through the CLI, with options parsed into the row."""
    out = ok(run("campaign", "create", "spring", "--trunk", "carrier-a", "--window", "09:00-12:00,14:00-20:00",
                 "--days", "mon-fri", "--retry-delay", "busy=10m,no_answer=30m", "--ring-timeout", "30s",
                 "--allow-regions", "CN,HK", "--allow-types", "mobile"))
    assert "created campaign 'spring'" in out
    row = db.execute("SELECT state, ring_timeout_s, retry_delays, allowed_regions FROM campaigns").fetchone()
    assert row == ("draft", 30.0, {"busy": 600.0, "no_answer": 1800.0}, ["CN", "HK"])
    assert "is now running" in ok(run("campaign", "start", "spring"))
    assert "is now paused" in ok(run("campaign", "pause", "spring"))
    assert "is now running" in ok(run("campaign", "resume", "spring"))
    listed = json.loads(ok(run("campaign", "list", "--json")))
    assert [(c["name"], c["state"]) for c in listed] == [("spring", "running")]
    assert "spring" in ok(run("campaign", "list"))
    assert "0 jobs cancelled" in ok(run("campaign", "cancel", "spring"))


def test_status_json_has_the_documented_keys(run: Any) -> None:
    """status --json is one object with the keys scripts rely on."""
    ok(run("campaign", "create", "c", "--trunk", "t"))
    ok(run("enqueue", "13900000001", "--campaign", "c"))
    status = json.loads(ok(run("campaign", "status", "c", "--json")))
    assert {"state", "jobs", "outcomes", "attempts", "answer_rate", "eta_s"} <= status.keys()
    assert status["jobs"]["pending"] == 1
    assert "pending 1" in ok(run("campaign", "status", "c"))


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--window", "25:00-26:00"], "25:00"),
        (["--tz", "Mars/Olympus"], "Mars/Olympus"),
        (["--days", "mon-funday"], "funday"),
        (["--ring-timeout", "soon"], "--ring-timeout"),
        (["--retry-delay", "answered=1m"], "--retry-delay"),
        (["--start-at", "tomorrow"], "--start-at"),
    ],
)
def test_bad_campaign_options_are_one_clear_error(run: Any, args: list[str], fragment: str) -> None:
    """A bad option is a ConfigError that names the option or value."""
    result = run("campaign", "create", "c", "--trunk", "t", *args)
    assert isinstance(result.exception, ConfigError)
    assert fragment in str(result.exception)


def test_upload_json_and_text(run: Any, tmp_path: Path) -> None:
    """upload --json has the documented counts; the text summary names the report and the earlier upload."""
    ok(run("campaign", "create", "c", "--trunk", "t"))
    path = tmp_path / "list.csv"
    path.write_text("姓名;手机\n张三;13900000001\n李四;12345\n王五;13900000001\n", encoding="gbk")
    summary = json.loads(ok(run("upload", "c", str(path), "--json")))
    assert {k: summary[k] for k in ("rows", "accepted", "duplicates", "dnc", "rejected")} == {
        "rows": 3, "accepted": 1, "duplicates": 1, "dnc": 0, "rejected": 1}
    assert summary["error_report"] == str(tmp_path / "list.csv.rejects.csv")
    text = ok(run("upload", "c", str(path)))
    assert "duplicates" in text and "rows/s" in text and "list.csv.rejects.csv" in text
    assert "uploaded to 'c' before" in text


def test_upload_of_a_bad_file_is_a_bad_upload(run: Any, tmp_path: Path) -> None:
    """A file without a phone column is a BadUpload, printed as one error line by main()."""
    ok(run("campaign", "create", "c", "--trunk", "t"))
    path = tmp_path / "names.csv"
    path.write_text("name\nzhang\n")
    result = run("upload", "c", str(path))
    assert isinstance(result.exception, BadUpload)
    assert "no phone column" in str(result.exception)


def test_dnc_commands(run: Any, tmp_path: Path) -> None:
    """dnc add, check (exit 1 when not listed), remove and import --json."""
    ok(run("campaign", "create", "c", "--trunk", "t"))
    ok(run("enqueue", "13900000001", "--campaign", "c"))
    assert "1 waiting jobs skipped" in ok(run("dnc", "add", "139 0000 0001", "--reason", "asked"))
    assert "is on the do-not-call list" in ok(run("dnc", "check", "+8613900000001"))
    assert "removed" in ok(run("dnc", "remove", "13900000001"))
    result = run("dnc", "check", "13900000001")
    assert result.exit_code == 1 and "not on" in result.stdout
    path = tmp_path / "dnc.csv"
    path.write_text("phone\n13900000002\nnope\n")
    summary = json.loads(ok(run("dnc", "import", str(path), "--json")))
    assert (summary["added"], summary["rejected"]) == (1, 1)


def test_enqueue_is_idempotent(run: Any) -> None:
    """enqueue adds once, reports the existing job the second time, and refuses invalid numbers."""
    ok(run("campaign", "create", "c", "--trunk", "t", "--tz", "Asia/Shanghai"))
    first = json.loads(ok(run("enqueue", "13900000001", "--campaign", "c", "--at", "2030-06-01T09:00", "--json")))
    assert first["created"] and first["due_at"].startswith("2030-06-01T01:00:00")
    assert "already in 'c'" in ok(run("enqueue", "+8613900000001", "--campaign", "c"))
    result = run("enqueue", "12345", "--campaign", "c")
    assert result.exception is not None and "not a valid number" in str(result.exception)
