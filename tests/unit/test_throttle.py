"""Pace math: the throttle factor's AIMD on 503/486 bursts, and the multi-limiter GCRA."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.throttle import (
    BUCKET_S,
    CodeCounts,
    ThrottlePolicy,
    ThrottleState,
    gcra_take,
    is_burst,
    next_state,
)

POLICY = ThrottlePolicy(share=0.3, min_calls=20, cut=0.5, floor=0.1, step=0.1, step_s=10)
NOW = 1_700_000_000.0  # a bucket boundary: NOW // 10 * 10 == NOW


def bucket(seconds_ago: float, total: int, throttled: int) -> CodeCounts:
    return CodeCounts(int((NOW - seconds_ago) // BUCKET_S), total, throttled)


def test_burst_needs_share_and_volume() -> None:
    """A third of 30 calls is a burst; 5 of 5 calls is not (too few to say anything about the trunk)."""
    assert is_burst(30, 10, POLICY)
    assert not is_burst(30, 8, POLICY)
    assert not is_burst(5, 5, POLICY)


def test_quiet_trunk_stays_at_full_speed() -> None:
    """3% busy over 100 calls is ordinary life: the factor stays 1."""
    state = next_state(ThrottleState(), [bucket(5, 100, 3)], NOW, POLICY)
    assert state.factor == 1.0


def test_burst_cuts_once_then_old_evidence_does_not_cut_again() -> None:
    """The minute that caused a cut is not counted twice: only buckets begun after the cut decide."""
    buckets = [bucket(25, 40, 20), bucket(15, 40, 20), bucket(5, 40, 20)]
    state = next_state(ThrottleState(), buckets, NOW, POLICY)
    assert state == ThrottleState(0.5, NOW)
    assert next_state(state, buckets, NOW + 5, POLICY) == state  # within step_s: no change at all
    later = next_state(state, buckets, NOW + 10, POLICY)
    assert later.factor == 0.6  # nothing new says burst: recover one step


def test_continuing_burst_cuts_down_to_the_floor() -> None:
    state = ThrottleState()
    for step in range(6):
        now = NOW + step * 10
        state = next_state(state, [CodeCounts(int(now) // BUCKET_S - 1, 30, 15)], now, POLICY)
    assert state.factor == pytest.approx(0.1)


def test_recovers_step_by_step_when_the_burst_ends() -> None:
    state = ThrottleState(0.2, NOW)
    factors = []
    for step in range(1, 11):
        now = NOW + step * 10
        state = next_state(state, [CodeCounts(int(now) // BUCKET_S - 1, 50, 1)], now, POLICY)
        factors.append(round(state.factor, 2))
    assert factors == [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0, 1.0]


def test_buckets_older_than_a_minute_are_ignored() -> None:
    assert next_state(ThrottleState(), [bucket(70, 100, 90)], NOW, POLICY).factor == 1.0


def test_policy_rejects_nonsense() -> None:
    """A cut of 1.5 would speed a throttled trunk up: refused at construction."""
    with pytest.raises(ValueError):
        ThrottlePolicy(cut=1.5)


# --------------------------------------------------------------------------------------------- GCRA

def test_idle_limiter_grants_its_burst_then_its_rate() -> None:
    """5/s with a burst of 5: five at once, then one per 0.2 s."""
    limits = [(0.2, 5.0)]
    granted, tats = gcra_take([None], 100.0, limits, 10)
    assert granted == 5 and tats == [pytest.approx(101.0)]
    assert gcra_take(tats, 100.0, limits, 10)[0] == 0
    assert gcra_take(tats, 100.2, limits, 10)[0] == 1
    assert gcra_take(tats, 101.0, limits, 10)[0] == 5


def test_several_limiters_grant_the_smallest_room_and_all_advance() -> None:
    """Campaign 5/s, trunk 2/s, fleet 100/s: the trunk decides, and every TAT moves by the grant."""
    limits = [(0.2, 5.0), (0.5, 2.0), (0.01, 100.0)]
    granted, tats = gcra_take([None, None, None], 10.0, limits, 50)
    assert granted == 2
    assert tats == [pytest.approx(10.4), pytest.approx(11.0), pytest.approx(10.02)]


def test_nothing_wanted_takes_nothing() -> None:
    """Asking for zero leaves every TAT as it was."""
    assert gcra_take([5.0], 1.0, [(0.5, 1.0)], 0) == (0, [5.0])


@given(
    st.floats(0.5, 500), st.floats(1, 20),
    st.lists(st.tuples(st.floats(0, 2), st.integers(0, 50)), min_size=1, max_size=60),
)
def test_grants_never_exceed_burst_plus_rate_times_elapsed(
    rate: float, burst: float, calls: list[tuple[float, int]]
) -> None:
    """Whatever the call pattern, the total granted over [t0, t] is at most burst + rate * (t - t0)."""
    limits = [(1.0 / rate, max(1.0, burst))]
    tats: list[float | None] = [None]
    now, total = 1000.0, 0
    for gap, wanted in calls:
        now += gap
        granted, new_tats = gcra_take(tats, now, limits, wanted)
        tats = list(new_tats)
        assert 0 <= granted <= wanted
        total += granted
        assert total <= max(1.0, burst) + rate * (now - 1000.0) + 1e-6


def test_steady_ticks_reach_the_rate() -> None:
    """Ticks every 0.21 s at 5/s with a 1 s burst: the jitter costs nothing over 30 s."""
    limits = [(0.2, 5.0)]
    tats: list[float | None] = [None]
    total = 0
    for tick in range(1, 144):
        granted, new_tats = gcra_take(tats, tick * 0.21, limits, 100)
        tats = list(new_tats)
        total += granted
    assert total >= 5 * 143 * 0.21 - 1
