"""Throttle rules at their edges, from the survivors of ``scripts/mutation``.

Policies are built inside the tests (a module-level policy is built before
mutmut starts watching, so it checks nothing); bursts exactly at the
thresholds; the oldest bucket of the minute; a burst at the floor.
"""

from __future__ import annotations

import pytest

from shared.throttle import BUCKET_S, WINDOW_BUCKETS, CodeCounts, ThrottlePolicy, ThrottleState, is_burst, next_state

NOW = 1_700_000_005.0  # 5 s into a bucket
MESSAGE = "throttle policy: need 0<share<=1, 0<cut<1, 0<floor<=1, step>0"


@pytest.mark.parametrize("fields", [
    {"share": 0.0}, {"share": 1.5}, {"cut": 0.0}, {"cut": 1.0}, {"floor": 0.0}, {"floor": 1.5}, {"step": 0.0},
])
def test_policy_out_of_range_is_refused(fields: dict[str, float]) -> None:
    """Each bound, just outside: one message naming every rule."""
    with pytest.raises(ValueError) as caught:
        ThrottlePolicy(**fields)
    assert str(caught.value) == MESSAGE


def test_policy_bounds_themselves_are_allowed() -> None:
    """share 1 and floor 1 are the inclusive ends; small and large positive steps are fine."""
    ThrottlePolicy(share=1.0, cut=0.99, floor=1.0, step=0.01)
    ThrottlePolicy(share=0.01, cut=0.01, floor=0.01, step=5.0)


def test_burst_at_exactly_the_thresholds() -> None:
    """min_calls calls with exactly share of them throttled is a burst; one fewer of either is not."""
    policy = ThrottlePolicy(share=0.5, min_calls=20)
    assert is_burst(20, 10, policy)
    assert not is_burst(19, 10, policy)
    assert not is_burst(20, 9, policy)


def test_the_oldest_bucket_of_the_minute_still_counts() -> None:
    """A burst in the bucket 50-60 s ago (not on a bucket boundary) cuts the factor."""
    policy = ThrottlePolicy(share=0.5, min_calls=20, cut=0.5, step_s=10)
    oldest = int(NOW) // BUCKET_S - (WINDOW_BUCKETS - 1)
    state = next_state(ThrottleState(), [CodeCounts(oldest, 20, 20)], NOW, policy)
    assert state.factor == 0.5
    assert next_state(ThrottleState(), [CodeCounts(oldest - 1, 20, 20)], NOW, policy).factor == 1.0


def test_burst_at_the_floor_changes_nothing() -> None:
    """Already at the floor: a burst leaves the state as it was, including when it last changed."""
    policy = ThrottlePolicy(share=0.5, min_calls=20, cut=0.5, floor=0.25, step_s=10)
    at_floor = ThrottleState(factor=0.25, changed_at=NOW - 30)
    after = next_state(at_floor, [CodeCounts(int(NOW) // BUCKET_S, 20, 20)], NOW, policy)
    assert after == at_floor
