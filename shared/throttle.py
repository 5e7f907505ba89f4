"""Pace math: carrier throttling detection, and the GCRA that spaces call starts.

Pure. A carrier that is over its own limit rarely says so; it answers a burst
of 503 (or 486 from every "busy" line at once). One busy lead is news about
the lead; a third of the last fifty calls busy is news about the trunk. The
worker counts final responses per trunk in 10-second buckets; the dispatcher
feeds them here and multiplies the trunk's calls-per-second by the factor.

The control is AIMD, as in TCP: on a burst the factor is cut multiplicatively
(at most once per ``step_s``), and while no burst is seen it grows back by a
fixed ``step`` per ``step_s`` until it is 1 again. Each decision looks at the
buckets of the last minute that began after the previous change, so one old
burst still visible in the minute does not cut again and again, nor cut again
the moment the factor is back to 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

BUCKET_S = 10
WINDOW_BUCKETS = 6


@dataclass(frozen=True, slots=True)
class CodeCounts:
    """Final responses of one trunk in one bucket: ``bucket`` is ``unix_ts // 10``."""

    bucket: int
    total: int
    throttled: int


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    share: float = 0.3        # throttled / total at or above this is a burst ...
    min_calls: int = 20       # ... when at least this many calls back it up
    cut: float = 0.5          # factor multiplied by this on a burst
    floor: float = 0.05       # never below: some calls must go out to see the burst end
    step: float = 0.1         # added per step_s while no burst is seen
    step_s: float = 10.0

    def __post_init__(self) -> None:
        if not (0 < self.share <= 1 and 0 < self.cut < 1 and 0 < self.floor <= 1 and self.step > 0):
            raise ValueError("throttle policy: need 0<share<=1, 0<cut<1, 0<floor<=1, step>0")


@dataclass(frozen=True, slots=True)
class ThrottleState:
    factor: float = 1.0
    changed_at: float = 0.0   # unix time of the last change of factor


def is_burst(total: int, throttled: int, policy: ThrottlePolicy) -> bool:
    return total >= policy.min_calls and throttled >= policy.share * total


def next_state(
    state: ThrottleState, buckets: Sequence[CodeCounts], now: float, policy: ThrottlePolicy = ThrottlePolicy()
) -> ThrottleState:
    """The trunk's pace factor after looking at the buckets of the last minute at unix time ``now``."""
    oldest = int(now) // BUCKET_S - (WINDOW_BUCKETS - 1)
    recent = [b for b in buckets if b.bucket >= oldest and b.bucket * BUCKET_S >= state.changed_at]
    burst = is_burst(sum(b.total for b in recent), sum(b.throttled for b in recent), policy)
    if now - state.changed_at < policy.step_s:
        return state
    if burst:
        factor = max(policy.floor, state.factor * policy.cut)
    elif state.factor < 1.0:
        factor = min(1.0, state.factor + policy.step)
    else:
        return state
    return replace(state, factor=factor, changed_at=now) if factor != state.factor else state


def gcra_take(
    tats: Sequence[float | None], now: float, limits: Sequence[tuple[float, float]], wanted: int
) -> tuple[int, list[float]]:
    """Take up to ``wanted`` call starts from several GCRA limiters at once; all or none per cell.

    ``limits`` are ``(interval_s, burst)`` per limiter (interval = 1 / rate;
    burst = cells that may go at once after a quiet spell, at least 1) and
    ``tats`` their theoretical arrival times (None when unseen). A cell is
    granted only if every limiter has room, so the grant is the smallest room.
    Returns the grant and the new TATs. ``producer/pacing.py`` runs the same
    arithmetic in Lua inside Redis, so dispatchers share the limiters.
    """
    base = [now if tat is None or tat < now else tat for tat in tats]
    granted = wanted
    for tat, (interval, burst) in zip(base, limits, strict=True):
        room = math.floor((now + burst * interval - tat) / interval + 1e-9)
        granted = min(granted, room)
    granted = max(granted, 0)
    return granted, [tat + granted * interval for tat, (interval, _b) in zip(base, limits, strict=True)]
