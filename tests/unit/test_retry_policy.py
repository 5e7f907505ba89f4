"""The campaign retry policy: pure decisions about a job's next state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.job_states import JobStatus
from shared.outcomes import Outcome
from shared.retry_policy import RetryPolicy, decide, parse_duration, parse_retry_delays

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("45s", 45), ("10m", 600), ("1.5h", 5400), ("2d", 172800), ("250ms", 0.25), ("90", 90), (" 5 m ", 300)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "m", "10x", "-5s", "ten minutes"])
def test_parse_duration_rejects_with_example(text: str) -> None:
    with pytest.raises(ValueError, match="examples"):
        parse_duration(text)


def test_parse_retry_delays() -> None:
    assert parse_retry_delays("busy=10m,no_answer=30m") == {
        Outcome.BUSY: timedelta(minutes=10),
        Outcome.NO_ANSWER: timedelta(minutes=30),
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [("busy", "outcome=duration"), ("happy=1m", "not an outcome"), ("answered=1m", "never retried")],
)
def test_parse_retry_delays_errors_say_why(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_retry_delays(text)


@pytest.mark.parametrize("outcome", [Outcome.ANSWERED, Outcome.REJECTED])
def test_reaching_a_decision_completes(outcome: Outcome) -> None:
    assert decide(outcome, 1, RetryPolicy(), NOW) == decide(outcome, 3, RetryPolicy(), NOW)
    assert decide(outcome, 1, RetryPolicy(), NOW).status is JobStatus.COMPLETED


@pytest.mark.parametrize("outcome", [Outcome.INVALID_NUMBER, Outcome.AUTH_FAILED, Outcome.FAILED])
def test_permanent_failures_never_retry(outcome: Outcome) -> None:
    decision = decide(outcome, 1, RetryPolicy(max_attempts=5), NOW)
    assert decision.status is JobStatus.FAILED
    assert decision.next_attempt_at is None


def test_busy_retries_after_the_campaign_delay_until_attempts_run_out() -> None:
    policy = RetryPolicy(max_attempts=3, delays={Outcome.BUSY: timedelta(minutes=7)})
    first = decide(Outcome.BUSY, 1, policy, NOW)
    assert first.status is JobStatus.RETRY_WAIT
    assert first.next_attempt_at == NOW + timedelta(minutes=7)
    last = decide(Outcome.BUSY, 3, policy, NOW)
    assert last.status is JobStatus.FAILED
    assert last.outcome is Outcome.BUSY


def test_unset_delays_fall_back_to_defaults() -> None:
    decision = decide(Outcome.WORKER_LOST, 1, RetryPolicy(delays={}), NOW)
    assert decision.next_attempt_at == NOW + timedelta(minutes=2)


def test_policy_round_trips_through_json() -> None:
    policy = RetryPolicy(4, {Outcome.NO_ANSWER: timedelta(seconds=90)})
    again = RetryPolicy.from_json(4, policy.to_json())
    assert again.delay_for(Outcome.NO_ANSWER) == timedelta(seconds=90)
    assert again.delay_for(Outcome.BUSY) == timedelta(minutes=10)
