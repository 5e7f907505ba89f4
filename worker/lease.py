"""Keep a job's lease alive while its call is live, so a long flow is never mistaken for a dead worker.

A call with a flow can last minutes (a transfer, a bridge, a recording). The
claim's lease covers ring time and set-up; a small thread at once, and then
every ``RENEW_EVERY_S``, moves ``lease_until`` to ``now() + LEASE_TTL_S``, fenced
on ``worker = me AND status = 'dialing'``: a worker that lost the job (the
reaper took it) never takes it back, it only learns that it lost it. A process
that dies stops renewing, and the reaper sees the lease run out within
``LEASE_TTL_S`` plus its grace: seconds, not the call's longest duration.

While Postgres is away the thread keeps trying every second; the job's
outcome path already waits for Postgres and overrules a ``worker_lost`` the
reaper wrote meanwhile (worker/store.py).
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)

LEASE_TTL_S = 30.0
RENEW_EVERY_S = 5.0
RETRY_EVERY_S = 1.0

_RENEW = """
UPDATE dial_jobs SET lease_until = now() + make_interval(secs => %(ttl)s)
 WHERE id = %(job_id)s AND status = 'dialing' AND worker = %(worker)s
"""


def renew_lease(conn: psycopg.Connection[Any], job_id: int, worker: str, ttl_s: float = LEASE_TTL_S) -> bool:
    """Extend the lease; False when this worker no longer holds the job."""
    with conn.transaction():
        return conn.execute(_RENEW, {"ttl": ttl_s, "job_id": job_id, "worker": worker}).rowcount == 1


class LeaseKeeper:
    """``with LeaseKeeper(pool, job_id, worker):`` renews the job's lease until the block ends."""

    def __init__(self, pool: ConnectionPool[Any], job_id: int, worker: str, *, ttl_s: float | None = None,
                 every_s: float | None = None) -> None:
        self._pool = pool
        self._job_id = job_id
        self._worker = worker
        self._ttl_s = LEASE_TTL_S if ttl_s is None else ttl_s
        self._every_s = RENEW_EVERY_S if every_s is None else every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id}", daemon=True)
        self.renewals = 0
        self.lost = False

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        wait = 0.0  # at once: the claim's lease covers ring time and set-up; from now on it is TTL-short
        while not self._stop.wait(wait):
            try:
                with self._pool.connection(timeout=self._every_s) as conn:
                    held = renew_lease(conn, self._job_id, self._worker, self._ttl_s)
            except (psycopg.Error, TimeoutError, Exception) as exc:  # the pool raises its own PoolTimeout
                log.warning("job %s: lease renewal failed (%s); retrying", self._job_id, type(exc).__name__)
                wait = RETRY_EVERY_S
                continue
            wait = self._every_s
            if not held:
                self.lost = True
                log.error("job %s: this worker no longer holds the lease; the reaper took it", self._job_id)
                return
            self.renewals += 1
