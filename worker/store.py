"""The worker's side of Postgres: claim a job, give it back, record what happened.

Claiming is a conditional UPDATE from ``queued`` to ``dialing``: exactly one
delivery of a message can win it, so a redelivered or duplicated message finds
zero rows and is dropped before any INVITE. Recording writes every try's CDR
row and the job's new state in one transaction, fenced on this worker still
holding the lease, so a reaper that already gave the job up is never overruled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from shared.job_states import Move, check_transition, sources
from shared.outcomes import Outcome
from shared.retry_policy import JobDecision, RetryPolicy

_CLAIM = """
UPDATE dial_jobs AS j
   SET status = 'dialing', attempts = j.attempts + 1, worker = %(worker)s,
       lease_until = now() + make_interval(secs => c.ring_timeout_s + c.hold_s + %(extra_s)s),
       updated_at = now()
  FROM campaigns AS c
 WHERE j.id = %(job_id)s AND j.status = ANY(%(from)s) AND c.id = j.campaign_id
RETURNING j.id AS job_id, j.campaign_id, j.e164, j.attempts, j.due_at, j.lease_until, j.metadata,
          c.name AS campaign, c.trunk, c.state AS campaign_state, c.region, c.tz, c.windows, c.days,
          c.start_at, c.end_at, c.ring_timeout_s, c.hold_s, c.max_attempts, c.retry_delays,
          c.allowed_regions, c.allowed_types, c.flow,
          EXISTS (SELECT 1 FROM dnc WHERE dnc.e164 = j.e164) AS on_dnc,
          now() AS claimed_at
"""

_FINISH = """
UPDATE dial_jobs
   SET status = %(status)s, outcome = %(outcome)s, next_attempt_at = COALESCE(%(next_at)s, next_attempt_at),
       attempts = attempts + %(attempts_delta)s, lease_until = NULL, worker = NULL,
       last_status = COALESCE(%(last_status)s, last_status), updated_at = now()
 WHERE id = %(job_id)s AND status = ANY(%(from)s) AND worker = %(worker)s
"""

# A Postgres outage longer than the lease lets the reaper record worker_lost for a call that in fact
# ended; the real outcome wins as long as nobody has claimed the job again since (same attempt).
_OVERRULE_LOST = """
UPDATE dial_jobs
   SET status = %(status)s, outcome = %(outcome)s, next_attempt_at = COALESCE(%(next_at)s, next_attempt_at),
       attempts = attempts + %(attempts_delta)s, lease_until = NULL, worker = NULL,
       last_status = COALESCE(%(last_status)s, last_status), updated_at = now()
 WHERE id = %(job_id)s AND outcome = 'worker_lost' AND attempts = %(attempt)s
   AND status = ANY(%(lost_from)s)
"""

_INSERT_TRY = """
INSERT INTO call_attempts (job_id, campaign_id, attempt, try_index, trunk, variant, dialled_uri, sip_call_id,
                           status_code, reason, provisional, invite_at, first_provisional_at, answer_at, end_at,
                           duration_s, hangup_by, outcome, worker, flow_steps, digits, transfer_target,
                           transfer_status, recording, first_audio_s, amd_decision, amd_reason,
                           amd_decided_at_s)
VALUES (%(job_id)s, %(campaign_id)s, %(attempt)s, %(try_index)s, %(trunk)s, %(variant)s, %(uri)s, %(call_id)s,
        %(status)s, %(reason)s, %(provisional)s, %(invite_at)s, %(first_provisional_at)s, %(answer_at)s,
        %(end_at)s, %(duration_s)s, %(hangup_by)s, %(outcome)s, %(worker)s, %(flow_steps)s, %(digits)s,
        %(transfer_target)s, %(transfer_status)s, %(recording)s, %(first_audio_s)s, %(amd_decision)s,
        %(amd_reason)s, %(amd_decided_at_s)s)
ON CONFLICT (job_id, attempt, try_index) DO NOTHING
"""


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job this worker now holds, with what the pre-dial checks need from its campaign."""

    job_id: int
    campaign_id: int
    campaign: str
    trunk: str
    e164: str
    attempt: int
    due_at: datetime | None
    lease_until: datetime
    claimed_at: datetime
    campaign_state: str
    region: str
    tz: str
    windows: str
    days: str
    start_at: datetime | None
    end_at: datetime | None
    ring_timeout_s: float
    hold_s: float
    max_attempts: int
    retry_delays: Mapping[str, float]
    allowed_regions: Sequence[str]
    allowed_types: Sequence[str]
    on_dnc: bool
    metadata: Mapping[str, Any]
    flow: Mapping[str, Any] | None = None  # the campaign's flow (shared.flow Flow.to_json()), if any

    @property
    def policy(self) -> RetryPolicy:
        return RetryPolicy.from_json(self.max_attempts, self.retry_delays)


@dataclass(frozen=True, slots=True)
class TryRow:
    """One CDR row, in column terms (the task builds it from a SIP result)."""

    try_index: int
    variant: str | None
    uri: str | None
    call_id: str | None
    status: int | None
    reason: str | None
    provisional: list[dict[str, Any]]
    invite_at: datetime | None
    first_provisional_at: datetime | None
    answer_at: datetime | None
    end_at: datetime | None
    duration_s: float | None
    hangup_by: str | None
    outcome: Outcome
    # What the flow of an answered call did (worker/flow_job.py FlowFacts).
    flow_steps: list[dict[str, Any]] | None = None
    digits: str | None = None
    transfer_target: str | None = None
    transfer_status: int | None = None
    recording: str | None = None
    first_audio_s: float | None = None
    # The amd step's verdict (shared/flow/listen.py), when the flow has one.
    amd_decision: str | None = None
    amd_reason: str | None = None
    amd_decided_at_s: float | None = None


def claim(conn: psycopg.Connection[Any], job_id: int, worker: str, extra_s: float) -> ClaimedJob | None:
    """Take the job from ``queued`` to ``dialing``; None when another delivery already has it.

    The lease covers the campaign's ring timeout and hold plus ``extra_s`` (set-up, backoff, grace).
    """
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_CLAIM, {"job_id": job_id, "worker": worker, "extra_s": extra_s,
                                   "from": sources(Move.CLAIM)}).fetchone()
    if row is None:
        return None
    row["attempt"] = row.pop("attempts")
    return ClaimedJob(**row)


def finish(
    conn: psycopg.Connection[Any],
    job: ClaimedJob,
    worker: str,
    tries: Sequence[TryRow],
    decision: JobDecision,
    *,
    undo_attempt: bool = False,
) -> bool:
    """Write the tries and the job's new state atomically; False if the job moved on meanwhile.

    When the reaper already recorded this attempt as ``worker_lost`` (a long
    Postgres outage outlived the lease) and nobody claimed the job since, the
    real outcome replaces it, so an answered person is not called again.

    ``undo_attempt`` gives the attempt back (a pre-dial check stopped it before any INVITE).
    """
    # RECORD and OVERRULE_LOST reach the same statuses: one check covers both statements.
    check_transition(Move.RECORD, check_transition(Move.OVERRULE_LOST, decision.status))
    last_status = next((t.status for t in reversed(tries) if t.status), None)
    params = {"from": sources(Move.RECORD), "lost_from": sources(Move.OVERRULE_LOST),
              "status": decision.status.value, "outcome": decision.outcome.value, "next_at": decision.next_attempt_at,
              "attempts_delta": -1 if undo_attempt else 0, "last_status": last_status,
              "job_id": job.job_id, "worker": worker, "attempt": job.attempt}
    with conn.transaction():
        for row in tries:
            conn.execute(_INSERT_TRY, _try_params(job, worker, row))
        updated = conn.execute(_FINISH, params).rowcount
        if updated == 0:
            updated = conn.execute(_OVERRULE_LOST, params).rowcount
    return updated == 1


def _try_params(job: ClaimedJob, worker: str, row: TryRow) -> dict[str, Any]:
    return {
        "job_id": job.job_id, "campaign_id": job.campaign_id, "attempt": job.attempt, "try_index": row.try_index,
        "trunk": job.trunk, "variant": row.variant, "uri": row.uri, "call_id": row.call_id,
        "status": row.status, "reason": row.reason, "provisional": Jsonb(row.provisional),
        "invite_at": row.invite_at, "first_provisional_at": row.first_provisional_at, "answer_at": row.answer_at,
        "end_at": row.end_at, "duration_s": row.duration_s, "hangup_by": row.hangup_by,
        "outcome": row.outcome.value, "worker": worker,
        "flow_steps": Jsonb(row.flow_steps) if row.flow_steps is not None else None, "digits": row.digits,
        "transfer_target": row.transfer_target, "transfer_status": row.transfer_status, "recording": row.recording,
        "first_audio_s": row.first_audio_s, "amd_decision": row.amd_decision, "amd_reason": row.amd_reason,
        "amd_decided_at_s": row.amd_decided_at_s,
    }


def postpone(conn: psycopg.Connection[Any], job: ClaimedJob, worker: str, next_at: datetime) -> bool:
    """Give a claimed job back untouched (no INVITE was sent): the attempt does not count."""
    with conn.transaction():
        updated = conn.execute(
            """
            UPDATE dial_jobs
               SET status = CASE WHEN attempts > 1 THEN 'retry_wait' ELSE 'pending' END,
                   attempts = attempts - 1, next_attempt_at = %(next_at)s, lease_until = NULL, worker = NULL,
                   updated_at = now()
             WHERE id = %(job_id)s AND status = ANY(%(from)s) AND worker = %(worker)s
            """,
            {"next_at": next_at, "job_id": job.job_id, "worker": worker, "from": sources(Move.POSTPONE)},
        ).rowcount
    return updated == 1


def flag_trunk(conn: psycopg.Connection[Any], trunk: str, *, healthy: bool, reason: str | None = None) -> None:
    """Record a trunk's health so dispatchers stop (or resume) sending it work."""
    with conn.transaction():
        conn.execute(
            """
            INSERT INTO trunks (name, registrar, username, healthy, unhealthy_reason, unhealthy_since)
            VALUES (%(name)s, '', '', %(healthy)s, %(reason)s, CASE WHEN %(healthy)s THEN NULL ELSE now() END)
            ON CONFLICT (name) DO UPDATE
               SET healthy = EXCLUDED.healthy, unhealthy_reason = EXCLUDED.unhealthy_reason,
                   unhealthy_since = CASE WHEN EXCLUDED.healthy THEN NULL
                                          ELSE COALESCE(trunks.unhealthy_since, now()) END,
                   updated_at = now()
            """,
            {"name": trunk, "healthy": healthy, "reason": reason},
        )

