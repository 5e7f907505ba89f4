"""Postgres connections: one pool per process, created after fork.

A pool inherited across fork shares sockets between parent and child and
corrupts both, so callers build the pool in the process that uses it (Celery's
worker_process_init, the dispatcher's main, the API's startup).
"""

from __future__ import annotations

from psycopg import Connection
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool


def open_pool(
    url: str, *, min_size: int = 1, max_size: int = 4, name: str = "dialer", wait: bool = True
) -> ConnectionPool:
    """Open a pool; with ``wait`` block until one connection works, so a bad URL fails at start.

    A worker passes ``wait=False``: Postgres may be briefly away when it starts, and its
    tasks already wait for the database (bounded) before claiming anything.
    """
    pool: ConnectionPool[Connection[TupleRow]] = ConnectionPool(
        url, min_size=min_size, max_size=max_size, name=name, open=False,
        kwargs={"autocommit": False, "application_name": f"sip-dialer-{name}"},
    )
    pool.open(wait=wait, timeout=15)
    return pool
