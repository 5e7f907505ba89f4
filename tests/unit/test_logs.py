"""Logging set-up: one level for every process, JSON lines with bound fields, secrets masked in both formats.

These run in this process against the real root handler that ``setup_logging``
installs; tests/faults/test_logs.py checks the same in real worker and
dispatcher processes.
"""

from __future__ import annotations

import json
import logging
import secrets
import subprocess
import sys
from collections.abc import Iterator

import pytest
from celery import Celery

from shared import logs
from shared.errors import ConfigError


@pytest.fixture(autouse=True)
def _restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    monkeypatch.delenv(logs.LEVEL_ENV, raising=False)
    monkeypatch.delenv(logs.FORMAT_ENV, raising=False)
    yield
    logs.bind_fields()
    logging.captureWarnings(False)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def password() -> str:
    value = "pw-" + secrets.token_hex(8)
    logs.register_secret(value)
    return value


def emit_everything(password: str) -> None:
    """Lines a careless library might write: the secret in the message, a traceback, a bound field, an extra."""
    log = logging.getLogger("dialer.test")
    logs.bind_fields(job_id=42, trunk="carrier-a", note=f"user:{password}")
    log.info("registering with password %s", password, extra={"call_id": "abc@host", "detail": password})
    try:
        raise ValueError(f"bad config {password}")
    except ValueError:
        log.exception("start-up failed")
    logging.getLogger("celery.app.trace").error("Task raised: %r", {"args": [password]})


def test_json_lines_parse_and_carry_bound_fields(capsys: pytest.CaptureFixture[str], password: str) -> None:
    """DIALER_LOG_FORMAT=json: every line one object with time, level, logger, message, pid and the fields."""
    logs.setup_logging("INFO", "json")
    emit_everything(password)
    lines = capsys.readouterr().err.splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 3
    first = records[0]
    assert {"time", "level", "logger", "message", "pid"} <= first.keys()
    assert (first["level"], first["logger"]) == ("INFO", "dialer.test")
    assert (first["job_id"], first["trunk"], first["call_id"]) == (42, "carrier-a", "abc@host")
    assert first["time"].endswith("+00:00")
    assert "Traceback" in records[1]["message"] and records[1]["level"] == "ERROR"


def test_password_never_in_either_format(capsys: pytest.CaptureFixture[str], password: str) -> None:
    """A registered secret is masked in message, traceback, bound field and extra, in text and in JSON."""
    for fmt in ("text", "json"):
        logs.setup_logging("DEBUG", fmt)
        emit_everything(password)
        out = capsys.readouterr().err
        assert out.count("***") >= 4, out
        assert password not in out


def test_text_lines_show_bound_fields(capsys: pytest.CaptureFixture[str]) -> None:
    """The text format appends the bound fields, so a person can follow one job through the lines."""
    logs.setup_logging("INFO", "text")
    logs.bind_fields(job_id=7, trunk="t1")
    logging.getLogger("x").warning("hello")
    logs.bind_fields()
    logging.getLogger("x").warning("bye")
    first, second = capsys.readouterr().err.splitlines()
    assert first.endswith("WARNING x: hello [job_id=7 trunk=t1]")
    assert second.endswith("WARNING x: bye")


def test_lines_follow_stderr_when_it_is_swapped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A command run in-process may swap stderr and close the old one; later lines go to the new stderr."""
    import io

    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    logs.setup_logging("INFO", "text")
    first.close()
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger("x").warning("after the swap")
    assert second.getvalue().endswith("WARNING x: after the swap\n")


def test_level_comes_from_option_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """--log-level wins, DIALER_LOG_LEVEL next, WARNING last; DIALER_LOG_FORMAT picks the formatter."""
    logs.setup_logging()
    assert logs.current_level() == "WARNING"
    monkeypatch.setenv(logs.LEVEL_ENV, "info")
    monkeypatch.setenv(logs.FORMAT_ENV, "JSON")
    logs.setup_logging()
    assert logs.current_level() == "INFO"
    assert isinstance(logging.getLogger().handlers[0].formatter, logs.JsonFormatter)
    logs.setup_logging("debug")
    assert logs.current_level() == "DEBUG"


@pytest.mark.parametrize(("variable", "value"), [("DIALER_LOG_LEVEL", "loud"), ("DIALER_LOG_FORMAT", "xml")])
def test_bad_setting_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    """A typo names the variable and what it accepts."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=rf"{variable}.*{value!r}.*use one of"):
        logs.setup_logging()


def test_celery_does_not_take_over_logging() -> None:
    """With keep_celery_off_logging, Celery's worker logging set-up keeps our handler, filter and level."""
    logs.setup_logging("INFO", "json")
    ours = logging.getLogger().handlers[:]
    logs.keep_celery_off_logging()
    app = Celery("t", broker="memory://", set_as_current=False)
    app.conf.worker_hijack_root_logger = True  # the worst case: Celery would clear the root handlers
    app.log.setup(loglevel="DEBUG", redirect_stdouts=False)
    assert logging.getLogger().handlers == ours
    assert logs.current_level() == "INFO"
    assert any(isinstance(f, logs.RedactingFilter) for f in ours[0].filters)


def test_dialer_rejects_a_bad_level_with_one_line() -> None:
    """``dialer --log-level loud``: exit 2 and one line naming the option, no traceback."""
    done = subprocess.run([sys.executable, "-c", "from shared.cli import main; main()", "--log-level", "loud",
                           "db", "migrate"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: DIALER_LOG_LEVEL (or --log-level): 'loud' is not a log level; use one of DEBUG, INFO, WARNING, "
        "ERROR, CRITICAL"]
