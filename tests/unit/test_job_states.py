"""The job state machine as written down: the table is derived from the moves, and nothing else sets a status.

tests/integration/test_job_states.py runs every move's real SQL and checks the
changes it makes against this table; here the table itself is pinned, and the
code is searched for status-changing statements no move accounts for.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.job_states import MOVES, TRANSITIONS, IllegalTransition, JobStatus, Move, check_transition, sources

S = JobStatus
ROOT = Path(__file__).resolve().parents[2]
# Every ``SET status`` of dial_jobs in the code, by file: a new one must name its Move and be counted here.
STATUS_WRITES = {
    "producer/campaigns.py": 1,   # CANCEL
    "producer/dispatcher.py": 1,  # DISPATCH
    "producer/dnc.py": 2,         # SKIP_DNC (one number, a DNC upload)
    "producer/reaper.py": 2,      # REAP_LOST, REOPEN
    "worker/store.py": 4,         # CLAIM, RECORD, OVERRULE_LOST, POSTPONE
}


def test_transitions_are_exactly_what_the_code_does() -> None:
    """The whole table, spelled out: a change to any move shows here as a diff to review."""
    assert TRANSITIONS == {
        S.PENDING: {S.QUEUED, S.CANCELLED, S.SKIPPED_DNC},
        S.RETRY_WAIT: {S.QUEUED, S.CANCELLED, S.SKIPPED_DNC, S.COMPLETED, S.FAILED},
        S.QUEUED: {S.DIALING, S.CANCELLED, S.SKIPPED_DNC, S.COMPLETED, S.FAILED, S.RETRY_WAIT},
        S.DIALING: {S.COMPLETED, S.FAILED, S.RETRY_WAIT, S.CANCELLED, S.SKIPPED_DNC, S.PENDING},
        S.FAILED: {S.PENDING, S.COMPLETED, S.RETRY_WAIT, S.CANCELLED, S.SKIPPED_DNC},
        S.COMPLETED: frozenset(),
        S.CANCELLED: frozenset(),
        S.SKIPPED_DNC: frozenset(),
    }


def test_only_a_queued_job_can_be_claimed_and_nothing_leaves_a_settled_one() -> None:
    """The two safety rules of the table: one way into dialing; completed, cancelled, skipped stay put."""
    assert [s for s in S if S.DIALING in TRANSITIONS[s]] == [S.QUEUED]
    assert not (TRANSITIONS[S.COMPLETED] | TRANSITIONS[S.CANCELLED] | TRANSITIONS[S.SKIPPED_DNC])
    assert S.DIALING not in MOVES[Move.CANCEL].sources | MOVES[Move.SKIP_DNC].sources


def test_check_transition_stops_a_status_the_move_cannot_write() -> None:
    """A store function handed a status its move cannot reach raises before writing, naming what it allows."""
    assert check_transition(Move.REAP_LOST, S.FAILED) is S.FAILED
    with pytest.raises(IllegalTransition, match="reap_lost cannot set a job to completed; it sets failed, retry_wait"):
        check_transition(Move.REAP_LOST, S.COMPLETED)
    with pytest.raises(IllegalTransition):
        check_transition(Move.RECORD, S.QUEUED)
    with pytest.raises(IllegalTransition):
        check_transition(Move.REOPEN, S.QUEUED)


def test_sources_are_sorted_sql_values() -> None:
    """``status = ANY(%s)`` fences get plain strings, in a stable order."""
    assert sources(Move.CANCEL) == ["pending", "queued", "retry_wait"]
    assert sources(Move.OVERRULE_LOST) == ["failed", "queued", "retry_wait"]
    assert sources(Move.CLAIM) == ["queued"]


def test_no_status_write_outside_the_known_moves() -> None:
    """Every ``SET status`` in the code is one the table accounts for (add a Move, then count it here)."""
    found: dict[str, int] = {}
    for folder in ("producer", "worker", "shared", "sandbox"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name == "job_states.py":
                continue
            count = len(re.findall(r"SET\s+status\s*=", path.read_text(encoding="utf-8")))
            if count:
                found[str(path.relative_to(ROOT))] = count
    assert found == STATUS_WRITES
