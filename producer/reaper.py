"""The dispatcher's housekeeping, every few seconds: reclaim what is stuck, close what is done.

1. **Lost workers.** A job in ``dialing`` whose lease ended more than a grace
   ago belongs to a dead worker (a live worker never keeps a call past its
   lease). It gets a ``call_attempts`` row (``try_index = -1``, outcome
   ``worker_lost``, the dead worker's name) and is rescheduled by the
   campaign's retry policy. The UPDATE is fenced on ``status = 'dialing' AND
   lease_until = <the value read>``: a worker that finishes at the same moment
   either commits first (the fence finds nothing) or finds its own fence
   (``worker = me``) broken, never both.
2. **Lost messages.** A job ``queued`` for longer than ``requeue_after`` lost
   its message (a Redis restart, a dispatcher that died between commit and
   send). It is sent again, ``queued_at`` first, then commit, then send, but
   only as many per trunk as its queue holds fewer messages than it has queued
   jobs (workers that are down leave every message waiting; re-sending would
   only pile up duplicates). Two messages for one job cannot make two calls:
   the worker's claim moves it out of ``queued`` once, and the other delivery
   finds nothing to claim.
3. **Finished campaigns.** A running campaign with jobs, none of them left in
   pending/queued/dialing/retry_wait and no upload in progress, is set
   ``finished``; a recurring one only once nothing is left to re-open (or its
   ``end_at`` has passed).
4. **Recurring campaigns.** Let R be the latest firing of ``recur_cron`` (in the
   campaign's zone) at or before now. Every job of the running campaign that is
   ``failed`` with outcome busy, no_answer or transient, whose row was last
   changed before R and that has no call attempt recorded at or after R, goes
   back to ``pending`` with ``attempts = 0``, due now. The rule is stateless and
   idempotent: a re-opened job is pending, and once it fails again its change
   is after R, so it waits for the next firing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
import redis
from celery import Celery
from psycopg.rows import dict_row

from shared.job_states import JobStatus, Move, check_transition, sources
from shared.metrics import REQUEUED, WORKER_LOST
from shared.outcomes import Outcome
from shared.queue import dial_queue, enqueue_dial
from shared.retry_policy import RetryPolicy, decide
from shared.schedule import last_recurrence

log = logging.getLogger(__name__)

REOPENED_OUTCOMES = (Outcome.BUSY.value, Outcome.NO_ANSWER.value, Outcome.TRANSIENT.value)
_REOPENED_TO = check_transition(Move.REOPEN, JobStatus.PENDING).value


@dataclass(frozen=True, slots=True)
class ReaperConfig:
    lease_grace_s: float = 15.0     # past lease_until before a dialing job counts as lost (live calls renew)
    requeue_after_s: float = 60.0   # in queued this long means the message was lost
    batch: int = 500                # rows per pass, so one pass stays short


@dataclass(frozen=True, slots=True)
class LostJob:
    job_id: int
    campaign: str
    worker: str | None
    attempt: int
    status: str


_LEASES = """
SELECT j.id, j.attempts, j.worker, j.lease_until, c.id AS campaign_id, c.name AS campaign, c.trunk,
       c.max_attempts, c.retry_delays, now() AS now
  FROM dial_jobs j JOIN campaigns c ON c.id = j.campaign_id
 WHERE j.status = 'dialing' AND j.lease_until < now() - make_interval(secs => %(grace)s)
 ORDER BY j.lease_until
 LIMIT %(batch)s
"""
_GIVE_UP_LEASE = """
UPDATE dial_jobs
   SET status = %(status)s, outcome = 'worker_lost', next_attempt_at = COALESCE(%(next_at)s, next_attempt_at),
       lease_until = NULL, worker = NULL, updated_at = now()
 WHERE id = %(id)s AND status = ANY(%(from)s) AND lease_until = %(lease_until)s
"""
_LOST_ATTEMPT = """
INSERT INTO call_attempts (job_id, campaign_id, attempt, try_index, trunk, reason, end_at, outcome, worker)
VALUES (%(id)s, %(campaign_id)s, %(attempts)s, -1, %(trunk)s, 'lease expired: worker lost', now(),
        'worker_lost', %(worker)s)
ON CONFLICT (job_id, attempt, try_index) DO NOTHING
"""


def reap_lost(conn: psycopg.Connection[Any], config: ReaperConfig = ReaperConfig()) -> list[LostJob]:
    """Turn dialing jobs with long-expired leases into worker_lost attempts; ``conn`` in autocommit."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_LEASES, {"grace": config.lease_grace_s, "batch": config.batch}).fetchall()
    lost = []
    for row in rows:
        policy = RetryPolicy.from_json(row["max_attempts"], row["retry_delays"])
        decision = decide(Outcome.WORKER_LOST, row["attempts"], policy, row["now"])
        with conn.transaction():
            updated = conn.execute(
                _GIVE_UP_LEASE,
                {"status": check_transition(Move.REAP_LOST, decision.status).value, "from": sources(Move.REAP_LOST),
                 "next_at": decision.next_attempt_at, "id": row["id"], "lease_until": row["lease_until"]},
            ).rowcount
            if updated != 1:
                continue  # the worker finished first
            conn.execute(_LOST_ATTEMPT, row)
        WORKER_LOST.labels(campaign=row["campaign"]).inc()
        lost.append(LostJob(row["id"], row["campaign"], row["worker"], row["attempts"], decision.status.value))
        log.warning("job %s of %s: worker %s lost it (lease ended %s); now %s",
                    row["id"], row["campaign"], row["worker"], row["lease_until"], decision.status.value)
    return lost


_QUEUED_BY_TRUNK = """
SELECT c.trunk, count(*) FROM dial_jobs j JOIN campaigns c ON c.id = j.campaign_id
 WHERE j.status = 'queued' GROUP BY c.trunk
"""
_STALE_QUEUED = """
WITH stale AS (
    SELECT j.id FROM dial_jobs j JOIN campaigns c ON c.id = j.campaign_id
     WHERE j.status = 'queued' AND j.queued_at < now() - make_interval(secs => %(after)s)
       AND c.trunk = %(trunk)s
     ORDER BY j.queued_at
     LIMIT %(limit)s
       FOR UPDATE OF j SKIP LOCKED
)
UPDATE dial_jobs j SET queued_at = now(), updated_at = now()
  FROM stale, campaigns c
 WHERE j.id = stale.id AND c.id = j.campaign_id
RETURNING j.id, c.name
"""


def requeue_stale(
    conn: psycopg.Connection[Any], app: Celery, client: redis.Redis, config: ReaperConfig = ReaperConfig()
) -> int:
    """Send again the dial messages of jobs queued too long ago; returns how many were sent.

    Only as many as the trunk's queue is short of its queued jobs: when the
    workers are down, every message is still waiting in the list and adding
    more each minute would only pile up duplicates for them to drop later.
    """
    sent = 0
    for trunk, queued in conn.execute(_QUEUED_BY_TRUNK).fetchall():
        missing = int(queued) - int(client.llen(dial_queue(trunk)))
        if missing <= 0:
            continue
        with conn.transaction():
            rows = conn.execute(_STALE_QUEUED, {"after": config.requeue_after_s, "trunk": trunk,
                                                "limit": min(missing, config.batch)}).fetchall()
        for job_id, campaign in rows:
            enqueue_dial(app, job_id, trunk)
            REQUEUED.labels(campaign=campaign).inc()
        if rows:
            log.warning("trunk %s: re-sent %d dial messages lost after %.0fs in queued",
                        trunk, len(rows), config.requeue_after_s)
        sent += len(rows)
    return sent


_FINISH = """
UPDATE campaigns c SET state = 'finished', updated_at = now()
 WHERE c.state = 'running'
   AND EXISTS (SELECT 1 FROM dial_jobs j WHERE j.campaign_id = c.id)
   AND NOT EXISTS (SELECT 1 FROM dial_jobs j WHERE j.campaign_id = c.id
                   AND j.status IN ('pending', 'queued', 'dialing', 'retry_wait'))
   AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.campaign_id = c.id AND u.finished_at IS NULL
                   AND u.created_at > now() - interval '1 hour')
   AND (c.recur_cron IS NULL OR c.end_at <= now()
        OR NOT EXISTS (SELECT 1 FROM dial_jobs j WHERE j.campaign_id = c.id AND j.status = 'failed'
                       AND j.outcome = ANY(%(outcomes)s)))
RETURNING c.name
"""


def finish_campaigns(conn: psycopg.Connection[Any]) -> list[str]:
    """Set running campaigns with nothing left to dial to ``finished``; returns their names."""
    with conn.transaction():
        names = [name for (name,) in conn.execute(_FINISH, {"outcomes": list(REOPENED_OUTCOMES)})]
    for name in names:
        log.info("campaign %s finished: no job left to dial", name)
    return names


_RECURRING = "SELECT id, name, recur_cron, tz FROM campaigns WHERE state = 'running' AND recur_cron IS NOT NULL"
_REOPEN = """
UPDATE dial_jobs j
   SET status = %(to)s, attempts = 0, next_attempt_at = now(), lease_until = NULL, worker = NULL,
       updated_at = now()
 WHERE j.campaign_id = %(campaign_id)s AND j.status = ANY(%(from)s) AND j.outcome = ANY(%(outcomes)s)
   AND j.updated_at < %(fired)s
   AND NOT EXISTS (SELECT 1 FROM call_attempts a WHERE a.job_id = j.id AND a.created_at >= %(fired)s)
"""


def reopen_recurring(conn: psycopg.Connection[Any], now: datetime) -> dict[str, int]:
    """Apply rule 4 to every running recurring campaign; returns jobs re-opened by campaign name."""
    reopened: dict[str, int] = {}
    for campaign_id, name, cron, tz in conn.execute(_RECURRING).fetchall():
        try:
            fired = last_recurrence(cron, tz, now)
        except ValueError as exc:
            log.error("campaign %s: recur_cron ignored: %s", name, exc)
            continue
        if fired is None:
            continue
        with conn.transaction():
            count = conn.execute(
                _REOPEN, {"campaign_id": campaign_id, "outcomes": list(REOPENED_OUTCOMES), "fired": fired,
                          "to": _REOPENED_TO, "from": sources(Move.REOPEN)}
            ).rowcount
        if count:
            reopened[name] = count
            log.info("campaign %s: re-opened %d jobs at its recurrence %s", name, count, fired.isoformat())
    return reopened
