"""Retry policy and SIP outcome rules at their edges, from the survivors of ``scripts/mutation``.

Each assertion fails for a mutant that every other fast test let through: a
200 that is not an answer, a lost outcome, a retry delay read from the wrong
side of ``=``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.outcomes import Outcome, classify
from shared.retry_policy import RetryPolicy, decide, parse_retry_delays

NOW = datetime(2026, 3, 3, 2, 0, tzinfo=UTC)


def test_200_is_an_answer_and_a_silent_408_is_transient() -> None:
    """The first 2xx counts as answered; a 408 without ringing (the default) is the network, not the lead."""
    assert classify(200).outcome is Outcome.ANSWERED
    assert classify(199).outcome is Outcome.TRANSIENT
    assert classify(408).outcome is Outcome.TRANSIENT
    assert classify(408, rang=True).outcome is Outcome.NO_ANSWER


def test_decision_keeps_the_outcome() -> None:
    """Completed and retried jobs carry the outcome that decided them, for reports."""
    assert decide(Outcome.ANSWERED, 1, RetryPolicy(), NOW).outcome is Outcome.ANSWERED
    assert decide(Outcome.BUSY, 1, RetryPolicy(), NOW).outcome is Outcome.BUSY


def test_retry_delay_value_is_what_follows_the_first_equals_sign() -> None:
    """'busy=1=2' is a bad duration for busy, not an unknown outcome 'busy=1'."""
    with pytest.raises(ValueError, match=r"^'1=2' is not a duration"):
        parse_retry_delays("busy=1=2")


def test_non_retryable_outcome_lists_the_retryable_ones() -> None:
    """Naming an outcome that is never retried says which ones may be named."""
    with pytest.raises(ValueError) as caught:
        parse_retry_delays("answered=5m")
    assert str(caught.value) == ("'answered' is never retried; retry delays apply to: "
                                 "busy, machine, no_answer, transient, worker_lost")


def test_outcome_without_any_delay_waits_five_minutes() -> None:
    """An outcome with neither a campaign nor a default delay falls back to 5 minutes."""
    assert RetryPolicy(delays={}).delay_for(Outcome.FAILED) == timedelta(minutes=5)


def test_policy_from_json_keeps_max_attempts() -> None:
    """The campaign's attempt budget survives the round trip through its JSON column."""
    assert RetryPolicy.from_json(4, {"busy": 60}).max_attempts == 4
