"""When a job is tried again: the campaign's policy as pure functions.

The worker reports an :class:`~shared.outcomes.Outcome`; :func:`decide` turns it
and the number of attempts so far into the job's next state and due time.
Nothing here sleeps: a retry is a row with ``next_attempt_at`` in the future,
picked up by a dispatcher, never a Celery ETA that the broker could redeliver.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType

from shared.job_states import JobStatus
from shared.outcomes import ANSWERED_OUTCOMES, RETRYABLE_OUTCOMES, Outcome

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}

DEFAULT_DELAYS: Mapping[Outcome, timedelta] = MappingProxyType(
    {
        Outcome.BUSY: timedelta(minutes=10),
        Outcome.NO_ANSWER: timedelta(minutes=30),
        Outcome.TRANSIENT: timedelta(minutes=5),
        Outcome.WORKER_LOST: timedelta(minutes=2),
        Outcome.MACHINE: timedelta(hours=2),
    }
)
COMPLETED_OUTCOMES = ANSWERED_OUTCOMES | {Outcome.REJECTED, Outcome.VOICEMAIL_LEFT}


def parse_duration(text: str) -> timedelta:
    """'45s', '10m', '1.5h', '2d', '250ms' or bare seconds -> timedelta; ValueError says what is accepted."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration (examples: 45s, 10m, 1h)")
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def parse_retry_delays(text: str) -> dict[Outcome, timedelta]:
    """'busy=10m,no_answer=30m' -> delays by outcome; only retryable outcomes may be named."""
    delays: dict[Outcome, timedelta] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"{part!r}: expected outcome=duration, e.g. busy=10m")
        try:
            outcome = Outcome(name.strip())
        except ValueError:
            raise ValueError(f"{name.strip()!r} is not an outcome") from None
        if outcome not in RETRYABLE_OUTCOMES:
            allowed = ", ".join(sorted(o.value for o in RETRYABLE_OUTCOMES))
            raise ValueError(f"{outcome.value!r} is never retried; retry delays apply to: {allowed}")
        delays[outcome] = parse_duration(value)
    return delays


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 3
    delays: Mapping[Outcome, timedelta] = field(default_factory=lambda: DEFAULT_DELAYS)

    def delay_for(self, outcome: Outcome) -> timedelta:
        return self.delays.get(outcome, DEFAULT_DELAYS.get(outcome, timedelta(minutes=5)))

    def to_json(self) -> dict[str, float]:
        return {o.value: d.total_seconds() for o, d in {**DEFAULT_DELAYS, **self.delays}.items()}

    @classmethod
    def from_json(cls, max_attempts: int, delays: Mapping[str, float]) -> RetryPolicy:
        return cls(max_attempts, {Outcome(k): timedelta(seconds=v) for k, v in delays.items()})


@dataclass(frozen=True, slots=True)
class JobDecision:
    status: JobStatus
    outcome: Outcome
    next_attempt_at: datetime | None


def decide(outcome: Outcome, attempts_made: int, policy: RetryPolicy, now: datetime) -> JobDecision:
    """The job's next state after its ``attempts_made``-th attempt ended in ``outcome``.

    Retryable outcomes go back to ``retry_wait`` while attempts remain; once the
    budget is spent the job fails with the last outcome kept, so reports show
    *why* a lead was never reached.
    """
    if outcome in COMPLETED_OUTCOMES:
        return JobDecision(JobStatus.COMPLETED, outcome, None)
    if outcome in RETRYABLE_OUTCOMES and attempts_made < policy.max_attempts:
        return JobDecision(JobStatus.RETRY_WAIT, outcome, now + policy.delay_for(outcome))
    return JobDecision(JobStatus.FAILED, outcome, None)
