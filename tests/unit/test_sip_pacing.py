"""The SIP agent's pure timing rules: even call-start pacing and REGISTER backoff."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.sip.pacing import EvenPacer, registration_backoff


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_first_start_is_allowed_at_once() -> None:
    """A fresh pacer owes nothing: the first call starts immediately."""
    pacer = EvenPacer(50, FakeClock())
    assert pacer.delay() == 0.0
    assert pacer.try_acquire()


def test_second_start_waits_one_interval() -> None:
    """At 50/s the next start is due 20 ms later, and delay() says so."""
    clock = FakeClock()
    pacer = EvenPacer(50, clock)
    assert pacer.try_acquire()
    assert not pacer.try_acquire()
    assert pacer.delay() == pytest.approx(0.02)
    clock.now += 0.019
    assert not pacer.try_acquire()
    clock.now += 0.001
    assert pacer.try_acquire()


def test_idle_time_earns_no_burst() -> None:
    """After a long idle spell only one start is allowed at once: no catch-up burst."""
    clock = FakeClock()
    pacer = EvenPacer(50, clock)
    pacer.try_acquire()
    clock.now += 60.0
    assert pacer.try_acquire()
    assert not pacer.try_acquire()


@given(steps=st.lists(st.floats(min_value=0.0, max_value=0.1, allow_nan=False), min_size=1, max_size=300),
       rate=st.floats(min_value=1.0, max_value=60.0))
def test_starts_are_never_closer_than_the_interval(steps: list[float], rate: float) -> None:
    """Whatever the polling pattern, two granted starts are at least 1/rate apart."""
    clock = FakeClock()
    pacer = EvenPacer(rate, clock)
    granted: list[float] = []
    for step in steps:
        clock.now += step
        if pacer.try_acquire():
            granted.append(clock.now)
    gaps = [b - a for a, b in itertools.pairwise(granted)]
    assert all(gap >= pacer.interval_s - 1e-9 for gap in gaps)


@given(polls=st.integers(min_value=1, max_value=2000))
def test_polling_at_the_interval_reaches_the_rate(polls: int) -> None:
    """A caller that polls exactly when delay() says gets the full rate, not less."""
    clock = FakeClock()
    pacer = EvenPacer(50, clock)
    granted = 0
    for _ in range(polls):
        clock.now += pacer.delay()
        granted += pacer.try_acquire()
    assert granted == polls


@pytest.mark.parametrize("rate", [0, -1, float("nan")])
def test_rate_must_be_positive(rate: float) -> None:
    """A zero, negative or NaN rate is a configuration bug, refused at once."""
    with pytest.raises(ValueError):
        EvenPacer(rate)


@pytest.mark.parametrize(
    ("failures", "expected"), [(0, 0.0), (1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (1000, 60.0)]
)
def test_registration_backoff_doubles_up_to_the_cap(failures: int, expected: float) -> None:
    """1, 2, 4, ... s between REGISTER retries, never more than a minute."""
    assert registration_backoff(failures) == expected


@given(st.integers(min_value=1, max_value=10_000))
def test_registration_backoff_is_monotone_and_bounded(failures: int) -> None:
    """More failures never mean a shorter wait, and the wait stays within (0, cap]."""
    assert 0 < registration_backoff(failures) <= 60.0
    assert registration_backoff(failures + 1) >= registration_backoff(failures)
