"""The dial job's state machine; Postgres holds the state, this module holds the rules.

    pending ──dispatch──> queued ──claim──> dialing ──record──> completed | failed | retry_wait
    retry_wait ──dispatch──> queued          dialing ──lease expired (reaper)──> retry_wait | failed
    queued ──message lost (reaper)──> queued (re-enqueued)
    pending | queued | retry_wait ──cancel──> cancelled;   pending ──DNC──> skipped_dnc

Only ``queued`` can be claimed, and only by one worker: the claim is a
conditional UPDATE, so a redelivered message finds zero rows and is dropped.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    DIALING = "dialing"
    COMPLETED = "completed"
    FAILED = "failed"
    RETRY_WAIT = "retry_wait"
    CANCELLED = "cancelled"
    SKIPPED_DNC = "skipped_dnc"


TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.SKIPPED_DNC})
DUE = frozenset({JobStatus.PENDING, JobStatus.RETRY_WAIT})
CANCELLABLE = frozenset({JobStatus.PENDING, JobStatus.QUEUED, JobStatus.RETRY_WAIT})

TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset({JobStatus.QUEUED, JobStatus.CANCELLED, JobStatus.SKIPPED_DNC}),
    JobStatus.RETRY_WAIT: frozenset({JobStatus.QUEUED, JobStatus.CANCELLED, JobStatus.SKIPPED_DNC}),
    JobStatus.QUEUED: frozenset(
        {JobStatus.DIALING, JobStatus.QUEUED, JobStatus.CANCELLED, JobStatus.RETRY_WAIT, JobStatus.SKIPPED_DNC,
         JobStatus.FAILED}
    ),
    JobStatus.DIALING: frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.RETRY_WAIT}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
    JobStatus.SKIPPED_DNC: frozenset(),
}


def can_transition(current: JobStatus, new: JobStatus) -> bool:
    return new in TRANSITIONS[current]


def sql_list(statuses: frozenset[JobStatus]) -> str:
    """A constant SQL list literal of states, e.g. for CHECK constraints and partial indexes."""
    return ", ".join(f"'{s.value}'" for s in sorted(statuses, key=lambda s: s.value))
