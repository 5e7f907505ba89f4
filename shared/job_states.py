"""The dial job's state machine; Postgres holds the state, this module holds the rules.

Every SQL statement that changes ``dial_jobs.status`` performs one :class:`Move`
below, and :data:`MOVES` says exactly which states it leaves and which it may
reach. :data:`TRANSITIONS` is derived from it, so the table cannot drift from
the code: each status-changing store function fences its UPDATE with
:func:`sources` and checks a status it was handed with :func:`check_transition`
before writing; tests/integration/test_job_states.py records every change
the real SQL makes (a Postgres trigger) and compares it with the table both
ways, and fails when a new ``SET status`` appears that no move names.

    (upload) ──> pending | skipped_dnc
    pending | retry_wait ──dispatch──> queued ──claim──> dialing
    dialing ──record──> completed | failed | retry_wait | cancelled | skipped_dnc
    dialing ──postpone (no INVITE; attempt given back)──> pending | retry_wait
    dialing ──reap lost lease──> retry_wait | failed                (outcome worker_lost)
    retry_wait | queued | failed ──overrule lost──> what the worker recorded
    failed ──reopen (recurring campaign)──> pending
    pending | queued | retry_wait ──cancel──> cancelled;   ──DNC──> skipped_dnc

``failed`` is not final: a recurring campaign re-opens it, and a worker whose
call outlived its lease (a Postgres outage) replaces the reaper's worker_lost
with what really happened, as long as nobody claimed the job since. Only
``queued`` can be claimed, and only by one worker: the claim is a conditional
UPDATE, so a redelivered message finds zero rows and is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


class JobStatus(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    DIALING = "dialing"
    COMPLETED = "completed"
    FAILED = "failed"
    RETRY_WAIT = "retry_wait"
    CANCELLED = "cancelled"
    SKIPPED_DNC = "skipped_dnc"


class Move(StrEnum):
    """One status-changing statement of the code (producer/*, worker/store.py, producer/reaper.py)."""

    DISPATCH = "dispatch"            # producer/dispatcher.py _MARK_QUEUED
    CLAIM = "claim"                  # worker/store.py claim
    RECORD = "record"                # worker/store.py finish (_FINISH)
    POSTPONE = "postpone"            # worker/store.py postpone
    OVERRULE_LOST = "overrule_lost"  # worker/store.py finish (_OVERRULE_LOST)
    REAP_LOST = "reap_lost"          # producer/reaper.py reap_lost
    REOPEN = "reopen"                # producer/reaper.py reopen_recurring
    CANCEL = "cancel"                # producer/campaigns.py change_state("cancel")
    SKIP_DNC = "skip_dnc"            # producer/dnc.py add_dnc and the DNC upload


@dataclass(frozen=True, slots=True)
class Edge:
    sources: frozenset[JobStatus]
    targets: frozenset[JobStatus]


def _edge(sources: set[JobStatus], targets: set[JobStatus]) -> Edge:
    return Edge(frozenset(sources), frozenset(targets))


_S = JobStatus
# Jobs no worker holds: cancel and DNC take them; a job being dialled is left to its worker.
WAITING = frozenset({_S.PENDING, _S.QUEUED, _S.RETRY_WAIT})
# What a worker may record for an attempt: the retry policy's three, or a pre-dial verdict.
RECORDED = frozenset({_S.COMPLETED, _S.FAILED, _S.RETRY_WAIT, _S.CANCELLED, _S.SKIPPED_DNC})

MOVES: Mapping[Move, Edge] = MappingProxyType({
    Move.DISPATCH: _edge({_S.PENDING, _S.RETRY_WAIT}, {_S.QUEUED}),
    Move.CLAIM: _edge({_S.QUEUED}, {_S.DIALING}),
    Move.RECORD: _edge({_S.DIALING}, set(RECORDED)),
    Move.POSTPONE: _edge({_S.DIALING}, {_S.PENDING, _S.RETRY_WAIT}),
    Move.OVERRULE_LOST: _edge({_S.RETRY_WAIT, _S.FAILED, _S.QUEUED}, set(RECORDED)),
    Move.REAP_LOST: _edge({_S.DIALING}, {_S.RETRY_WAIT, _S.FAILED}),
    Move.REOPEN: _edge({_S.FAILED}, {_S.PENDING}),
    Move.CANCEL: _edge(set(WAITING), {_S.CANCELLED}),
    Move.SKIP_DNC: _edge(set(WAITING), {_S.SKIPPED_DNC}),
})


def _transitions() -> Mapping[JobStatus, frozenset[JobStatus]]:
    table: dict[JobStatus, set[JobStatus]] = {status: set() for status in JobStatus}
    for edge in MOVES.values():
        for source in edge.sources:
            table[source] |= edge.targets - {source}  # staying put is no transition
    return MappingProxyType({status: frozenset(targets) for status, targets in table.items()})


# current status -> the statuses the code can move it to; derived from MOVES, never edited by hand.
TRANSITIONS = _transitions()


class IllegalTransition(ValueError):
    """A store function was asked to write a status its move cannot reach: a bug, stopped before the write."""


def check_transition(move: Move, target: JobStatus) -> JobStatus:
    """``target`` if ``move`` may write it; raises IllegalTransition naming the move and what it allows."""
    allowed = MOVES[move].targets
    if target not in allowed:
        raise IllegalTransition(f"{move.value} cannot set a job to {target.value}; it sets "
                                f"{', '.join(sorted(s.value for s in allowed))}")
    return target


def sources(move: Move) -> list[str]:
    """The statuses ``move`` leaves, as a sorted list for ``status = ANY(%s)`` in its UPDATE's fence."""
    return sorted(s.value for s in MOVES[move].sources)
