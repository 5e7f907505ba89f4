"""Helpers every producer-side command shares: a database connection, JSON output, a progress bar.

One place decides where the database is: ``DIALER_DATABASE_URL`` when set,
else the embedded Postgres under the data folder (started, migrated, and
stopped when the command ends), as ``dialer db migrate`` does, so a newcomer
can run every command on a bare machine.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any

import psycopg
import typer
from psycopg.rows import TupleRow

from shared.cli import settings
from shared.errors import ConfigError, DatabaseUnavailable
from shared.logs import redact


@contextlib.contextmanager
def database() -> Iterator[psycopg.Connection[TupleRow]]:
    """An autocommit connection for one command; DatabaseUnavailable when it cannot be had."""
    from shared.db.migrate import migrate
    from shared.embedded import services

    cfg = settings()
    with services(cfg.database_url, cfg.redis_url or "unused://", cfg.data_dir) as urls:
        try:
            if cfg.database_url is None:
                migrate(urls.database_url)  # the embedded database is ours to keep up to date
            conn = psycopg.connect(urls.database_url, autocommit=True, application_name="sip-dialer-cli")
        except psycopg.OperationalError as exc:
            first = (str(exc).strip().splitlines() or ["unknown error"])[0]
            raise DatabaseUnavailable(
                f"cannot connect to the database ({redact(first)}); check DIALER_DATABASE_URL"
            ) from None
        with conn:
            yield conn


def echo_json(value: Any) -> None:
    """One JSON document on stdout: non-ASCII kept readable, datetimes as ISO text."""
    typer.echo(json.dumps(value, ensure_ascii=False, default=_json_default))


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def option_error(option: str, exc: Exception) -> ConfigError:
    """A bad option value as the one-line error the CLI prints: ``--window: ...``."""
    return ConfigError(f"{option}: {exc}")


class Progress:
    """A progress bar on stderr when it is a terminal; nothing otherwise (pipes, CI logs, tests)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._bar: Any = None
        self._done = 0
        self.enabled = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        if self._bar is None:
            self._bar = typer.progressbar(length=total, label=self.label, file=sys.stderr)
            self._bar.__enter__()
        self._bar.update(max(done - self._done, 0))
        self._done = max(done, self._done)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


@contextlib.contextmanager
def progress(label: str) -> Iterator[Progress]:
    bar = Progress(label)
    try:
        yield bar
    finally:
        bar.close()
