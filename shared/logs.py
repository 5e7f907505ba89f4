"""Logging set-up for every dialer process, with a last line of defence for secrets.

One setting for every command: ``--log-level`` of ``dialer`` (or
``DIALER_LOG_LEVEL``; default WARNING) and ``DIALER_LOG_FORMAT`` (``text``, the
default, or ``json``: one object a line with ``time``, ``level``, ``logger``,
``message``, ``pid`` and the fields bound to the work in hand, such as
``job_id``, ``trunk`` and ``call_id``, for log collectors). The supervisor hands
the level to its worker children (``--log-level``, from :func:`current_level`);
they inherit the format with the environment; Celery is kept from configuring
logging over it (:func:`keep_celery_off_logging`).

Code never logs a password on purpose; the redacting filter makes sure an
accident (a library that prints a URL with credentials, a malformed message
echoed in a task failure, an exception that carries a config object) does not
leak one either: every registered secret value is replaced by ``***``, in the
message, the traceback and every bound field, and ``user:password@`` in URLs
is masked. It sits on the root handler, whichever format it writes.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from shared.errors import ConfigError

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("text", "json")
DEFAULT_LEVEL = "WARNING"
LEVEL_ENV = "DIALER_LOG_LEVEL"
FORMAT_ENV = "DIALER_LOG_FORMAT"

_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]*):(?P<secret>[^@/\s]+)@", re.I)
_secrets: set[str] = set()
_lock = threading.Lock()
_bound: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "dialer_log_fields", default=MappingProxyType({}))
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def register_secret(value: str | None) -> None:
    """Mask ``value`` wherever it would appear in a log line. Short values are ignored (too many false hits)."""
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    text = _URL_PASSWORD.sub(r"\g<scheme>:***@", text)
    for secret in tuple(_secrets):
        if secret in text:
            text = text.replace(secret, "***")
    return text


def bind_fields(**fields: Any) -> None:
    """From now on in this thread (context), every line carries ``fields`` (job_id=..., trunk=...).

    Replaces what was bound before; ``bind_fields()`` clears. A Celery task
    binds at its start and clears at its end (worker/tasks.py).
    """
    _bound.set(dict(fields))


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The bound fields of a record, then its scalar ``extra=`` ones, with secrets masked."""
    fields: dict[str, Any] = dict(_bound.get())
    for key, value in vars(record).items():
        if key not in _STANDARD and not key.startswith("_"):
            fields[key] = value
    clean: dict[str, Any] = {}
    for key, value in fields.items():
        if value is None:
            continue
        if isinstance(value, bool | int | float):
            clean[key] = value
        elif isinstance(value, str):
            clean[key] = redact(value)
        # Structured extras (Celery's ``data`` carries a task's arguments) are left out: a field is a scalar.
    return clean


class RedactingFilter(logging.Filter):
    """Rewrites the record's final message (and folds in its traceback) with secrets masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if record.exc_info:
            cleaned += "\n" + redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            cleaned += "\n" + redact(record.exc_text)
        if cleaned != message:
            record.msg, record.args = cleaned, None
            record.exc_info = record.exc_text = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message [job_id=.. trunk=..]``: for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = record_fields(record)
        if fields:
            line += " [" + " ".join(f"{k}={v}" for k, v in fields.items()) + "]"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object a line, for log collectors (Loki, Elasticsearch, CloudWatch)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if record.exc_info:  # only without the filter (it folds tracebacks into the message)
            entry["message"] += "\n" + redact(self.formatException(record.exc_info))
        for key, value in record_fields(record).items():
            entry.setdefault(key, value)
        return json.dumps(entry, ensure_ascii=False)


def _choice(given: str | None, variable: str, allowed: tuple[str, ...], default: str, what: str) -> str:
    value = (given if given else os.environ.get(variable, "")).strip()
    if not value:
        return default
    normal = value.upper() if what == "level" else value.lower()
    if normal not in allowed:
        raise ConfigError(f"{variable} (or --log-{what}): {value!r} is not a log {what}; use one of "
                          f"{', '.join(allowed)}")
    return normal


def resolve_level(given: str | None = None) -> str:
    """``given`` (the command line) else ``DIALER_LOG_LEVEL`` else WARNING; ConfigError names a bad value."""
    return _choice(given, LEVEL_ENV, LEVELS, DEFAULT_LEVEL, "level")


def resolve_format(given: str | None = None) -> str:
    return _choice(given, FORMAT_ENV, FORMATS, "text", "format")


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to ``sys.stderr`` as it is at each line, not as it was at set-up.

    A command run in-process (a CLI test runner, an embedding program) may swap
    ``sys.stderr`` for a buffer and close it afterwards; a handler that kept the
    old object would then fail on every later line of a long-lived thread.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def setup_logging(level: str | None = None, fmt: str | None = None) -> None:
    """Log to stderr, one line per event, through the redacting filter, at the one level for every process."""
    chosen_level, chosen_format = resolve_level(level), resolve_format(fmt)
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter() if chosen_format == "json" else TextFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(chosen_level)
    logging.captureWarnings(True)  # a library's warning is a log line too (and JSON when asked)


def current_level() -> str:
    """The root logger's level name, e.g. for uvicorn or a child process's ``--log-level``."""
    return logging.getLevelName(logging.getLogger().getEffectiveLevel())


def keep_celery_off_logging() -> None:
    """Celery configures the root logger (level, handlers) at worker start unless someone answers its signal.

    Answering it keeps :func:`setup_logging`'s handler, filter and level: Celery's
    own loggers (task failures echo a message's arguments) then go through them.
    """
    from celery import signals

    signals.setup_logging.connect(_celery_setup_logging, weak=False)


def _celery_setup_logging(**_: Any) -> None:
    """Celery's ``setup_logging`` signal: logging is already set up; this answer keeps Celery's hands off."""
