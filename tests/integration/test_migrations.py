"""Migrations against a real Postgres: idempotent, recorded, and safe when two processes run at once."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from shared.db.migrate import available_migrations, migrate
from tests.support.needs import need_module
from tests.support.services import _with_database

pytestmark = pytest.mark.integration


def _env_without_dialer_settings(**settings: str) -> dict[str, str]:
    """This process's environment with none of its ``DIALER_*`` settings, plus ``settings``.

    The rest is kept as it is: under root the embedded Postgres creates its
    system user with ``useradd``, which lives in ``/usr/sbin`` -- a trimmed
    PATH passes on a machine where that user already exists and fails on a
    fresh one.
    """
    kept = {k: v for k, v in os.environ.items() if not k.startswith("DIALER_")}
    return {**kept, **settings}


@pytest.fixture
def empty_database(admin_database_url: str) -> Iterator[str]:
    name = f"dialer_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    yield _with_database(admin_database_url, name)
    with psycopg.connect(admin_database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def test_migrate_twice_applies_once(empty_database: str) -> None:
    """The second run finds everything applied and changes nothing."""
    versions = [m.version for m in available_migrations()]
    assert migrate(empty_database) == versions
    assert migrate(empty_database) == []
    with psycopg.connect(empty_database) as conn:
        recorded = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert recorded == versions


def test_two_processes_migrating_at_once_both_succeed(empty_database: str) -> None:
    """Compose starts several services together: the advisory lock serialises them."""
    code = "import sys; from shared.db.migrate import migrate; print(len(migrate(sys.argv[1])))"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, empty_database], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert sorted(outputs) == ["0", str(len(available_migrations()))]


def test_cli_migrate_against_external_database(empty_database: str) -> None:
    """`dialer db migrate` uses DIALER_DATABASE_URL as it is, twice."""
    env = _env_without_dialer_settings(DIALER_DATABASE_URL=empty_database)
    run = [sys.executable, "-c", "from shared.cli import main; main()", "db", "migrate"]
    first = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60, check=True)
    second = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60, check=True)
    assert first.stdout.startswith("applied 0001_init")
    assert second.stdout.strip() == "schema is up to date"


def test_cli_migrate_embedded_when_no_url(tmp_path: pytest.TempPathFactory) -> None:
    """With no DIALER_DATABASE_URL the command starts the embedded Postgres under the data dir."""
    need_module("pgserver", "pip install -e '.[embedded]'")
    env = _env_without_dialer_settings(DIALER_DATA_DIR=str(tmp_path), HOME=str(tmp_path))
    run = [sys.executable, "-c", "from shared.cli import main; main()", "db", "migrate"]
    first = subprocess.run(run, env=env, capture_output=True, text=True, timeout=180)
    assert first.returncode == 0, first.stderr
    second = subprocess.run(run, env=env, capture_output=True, text=True, timeout=180)
    assert second.returncode == 0, second.stderr
    assert first.stdout.startswith("applied")
    assert second.stdout.strip() == "schema is up to date"


def test_bad_setting_fails_with_one_line_naming_the_variable() -> None:
    env = _env_without_dialer_settings(DIALER_METRICS_PORT="ninety")
    run = [sys.executable, "-c", "from shared.cli import main; main()", "db", "migrate"]
    result = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: DIALER_METRICS_PORT:")
    assert len(result.stderr.strip().splitlines()) == 1
