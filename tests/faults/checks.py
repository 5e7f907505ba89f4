"""Count what a fault cost: duplicate calls and lost outcomes, from both sides of the wire.

The PBX side is sipp's trace (every INVITE dialog it saw, with start and end);
the dialer side is Postgres (jobs and their ``call_attempts`` rows). Neither
alone can tell a duplicate from a legitimate retry, so:

- a **duplicate call** is two dialogs to one number alive at the same time,
  or a number answered more than once beyond what dead workers explain (an
  answer completes a job; a ``worker_lost`` row explains one more answer only
  when that attempt has no CDR row of its own, i.e. the worker really died
  before recording), or an attempt that started before the previous attempt
  of the same job had ended (by the CDR: ``invite_at`` against the last
  ``end_at`` or the reaper's ``worker_lost`` row);
- a **lost outcome** is an INVITE that reached the PBX and has neither a CDR
  row (matched by SIP Call-ID) nor a ``worker_lost`` attempt of its job (one
  without CDR rows: the worker died) to stand for it, or a job left
  unsettled (not completed, failed, rescheduled, cancelled or skipped) once
  the run is over; counted once per job.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any

from shared.numbers import NumberType, normalise
from tests.support.sipp import DialogSeen, overlapping_dialogs

_ALL_TYPES = frozenset(NumberType)
SETTLED = frozenset({"completed", "failed", "retry_wait", "cancelled", "skipped_dnc"})


@dataclass
class Tally:
    """One run's figures, as the fault tests print them and the bench tabulates them."""

    scenario: str
    jobs: int
    faults: int
    duplicate_calls: int = 0
    lost_outcomes: int = 0
    recover_s: float | None = None
    dialogs: int = 0
    run_s: float | None = None  # wall time of the run, when the caller measures it per row
    details: list[str] = field(default_factory=list)

    def line(self) -> str:
        recover = "-" if self.recover_s is None else f"{self.recover_s:.1f}s"
        return (f"[{self.scenario}] jobs={self.jobs} faults={self.faults} dialogs={self.dialogs} "
                f"duplicate_calls={self.duplicate_calls} lost_outcomes={self.lost_outcomes} recover={recover}")


@dataclass
class _Job:
    job_id: int
    status: str
    attempts: int
    call_ids: set[str] = field(default_factory=set)
    answered_rows: int = 0
    lost_attempts: set[int] = field(default_factory=set)
    attempts_with_calls: set[int] = field(default_factory=set)
    spans: dict[int, tuple[datetime | None, datetime | None]] = field(default_factory=dict)


def _e164(user: str) -> str:
    return normalise(user, "CN", allowed_regions=frozenset({"CN"}), allowed_types=_ALL_TYPES).e164


def load_jobs(conn: Any, campaign_ids: Sequence[int]) -> dict[str, _Job]:
    jobs: dict[str, _Job] = {}
    by_id: dict[int, _Job] = {}
    for job_id, e164, status, attempts in conn.execute(
        "SELECT id, e164, status, attempts FROM dial_jobs WHERE campaign_id = ANY(%s)", (list(campaign_ids),)
    ):
        job = _Job(job_id, status, attempts)
        jobs[e164] = by_id[job_id] = job
    for job_id, attempt, call_id, outcome, invite_at, end_at in conn.execute(
        "SELECT job_id, attempt, sip_call_id, outcome, invite_at, end_at FROM call_attempts"
        " WHERE campaign_id = ANY(%s)", (list(campaign_ids),)
    ):
        job = by_id[job_id]
        if outcome == "worker_lost":
            job.lost_attempts.add(attempt)
            end_at_lost = job.spans.get(attempt, (None, None))
            job.spans[attempt] = (end_at_lost[0], max(filter(None, (end_at_lost[1], end_at)), default=None))
            continue
        job.attempts_with_calls.add(attempt)
        if call_id:
            job.call_ids.add(call_id)
        if outcome == "answered":
            job.answered_rows += 1
        first, last = job.spans.get(attempt, (None, None))
        job.spans[attempt] = (min(filter(None, (first, invite_at)), default=None),
                              max(filter(None, (last, end_at)), default=None))
    return jobs


def tally(
    conn: Any, dialogs: Sequence[DialogSeen], campaign_ids: Sequence[int], *, scenario: str, faults: int,
    recover_s: float | None = None, settled: frozenset[str] = SETTLED,
) -> Tally:
    """Compare the PBX's dialogs with the dialer's records for the given campaigns.

    ``settled`` are the job states that count as done for this run (a run that
    stops its workers on purpose leaves jobs ``queued`` without losing them).
    """
    jobs = load_jobs(conn, campaign_ids)
    result = Tally(scenario, len(jobs), faults, recover_s=recover_s, dialogs=len(dialogs))
    by_number: dict[str, list[DialogSeen]] = defaultdict(list)
    for dialog in dialogs:
        by_number[_e164(dialog.user)].append(dialog)
    for first, second in overlapping_dialogs(dialogs):
        result.duplicate_calls += 1
        result.details.append(f"overlap: {first.user} {first.call_id} and {second.call_id}")
    for e164, job in sorted(jobs.items()):
        seen = by_number.get(e164, [])
        _check_job(result, e164, job, seen, settled)
    strangers = sorted(set(by_number) - set(jobs))
    for e164 in strangers:  # an INVITE to a number no job holds: nobody recorded it
        result.lost_outcomes += len(by_number[e164])
        result.details.append(f"unknown number dialled: {e164} x{len(by_number[e164])}")
    return result


def _check_job(result: Tally, e164: str, job: _Job, seen: Sequence[DialogSeen], settled: frozenset[str]) -> None:
    lost = 0
    if job.status not in settled:
        lost = 1
        result.details.append(f"unsettled: job {job.job_id} {e164} left {job.status}")
    unrecorded = [d for d in seen if d.call_id not in job.call_ids]
    died = job.lost_attempts - job.attempts_with_calls  # attempts whose worker really died
    if len(unrecorded) > len(died):
        lost = max(lost, len(unrecorded) - len(died))
        result.details.append(f"unrecorded INVITE: job {job.job_id} {e164}: {len(unrecorded)} dialogs without a"
                              f" CDR row, {len(died)} attempts whose worker died")
    result.lost_outcomes += lost  # a job left dialing after an unrecorded call is one outcome lost, not two
    # A job is completed by its first answer; only a worker that really died before recording may be retried.
    answered = sum(1 for d in seen if d.answered)
    if answered > 1 + len(died):
        result.duplicate_calls += answered - 1 - len(died)
        result.details.append(f"answered {answered}x: job {job.job_id} {e164}: {job.answered_rows} answered rows,"
                              f" {len(died)} attempts whose worker died")
    ordered = [job.spans[a] for a in sorted(job.spans)]
    for (_, previous_end), (next_start, _) in pairwise(ordered):
        if previous_end is not None and next_start is not None and next_start < previous_end:
            result.duplicate_calls += 1
            result.details.append(f"attempts overlap in the CDR: job {job.job_id} {e164}")
