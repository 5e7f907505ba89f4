"""A fresh Postgres database and a Redis database number of their own, for one benchmark run.

Every bench needs the same: the servers on 127.0.0.1 when they answer (or the
URLs given), embedded ones otherwise, and nothing left behind afterwards.
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
import redis

from shared.db.migrate import migrate

LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"


def answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def with_path(url: str, path: str) -> str:
    """The same server, another database (name or number)."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{path}"))


@contextlib.contextmanager
def fresh_database(tmp: Path, admin_url: str | None = None) -> Iterator[str]:
    """A new, migrated database, dropped afterwards: ``admin_url``, DIALER_BENCH_DATABASE_URL, local or embedded."""
    with contextlib.ExitStack() as stack:
        admin = admin_url or os.environ.get("DIALER_BENCH_DATABASE_URL") or (LOCAL_PG if answers(5432) else None)
        if not admin:
            from shared.embedded import embedded_postgres

            admin = stack.enter_context(embedded_postgres(tmp / "pg"))
        name = f"dialer_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
        try:
            url = with_path(admin, name)
            migrate(url)
            yield url
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


@contextlib.contextmanager
def own_redis_db(tmp: Path) -> Iterator[str]:
    """A Redis database number claimed (SET NX) for this run, flushed before and after."""
    with contextlib.ExitStack() as stack:
        server = os.environ.get("DIALER_BENCH_REDIS_URL") or (LOCAL_REDIS if answers(6379) else None)
        if not server:
            from shared.embedded import embedded_redis

            server = stack.enter_context(embedded_redis(tmp / "redis"))
        base = redis.Redis.from_url(server)
        token = uuid.uuid4().hex
        number = next((n for n in range(15, 0, -1)
                       if base.set(f"dialer-test-claim:{n}", token, nx=True, ex=3600)), None)
        if number is None:
            raise SystemExit("no free Redis database number (1-15)")
        url = with_path(server, str(number))
        client = redis.Redis.from_url(url)
        client.flushdb()
        try:
            yield url
        finally:
            client.flushdb()
            if base.get(f"dialer-test-claim:{number}") == token.encode():
                base.delete(f"dialer-test-claim:{number}")
