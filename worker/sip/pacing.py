"""Pure timing decisions of the SIP agent: call-start pacing and REGISTER backoff.

Why pacing matters here: every call opens an RTP and an RTCP socket in
pjsua's 64-handle select() ioqueue, and a closed socket stays reserved about
500 ms. Starting calls faster than about 60/s exhausts the ioqueue and pjsua
aborts the whole process. So starts are spaced evenly, and an idle spell
earns no credit: a token bucket would allow exactly the burst that kills us.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]


class EvenPacer:
    """Allows one event per ``1/rate`` seconds, never two closer than that.

    The clock is injected (monotonic seconds) so tests can drive it.
    """

    def __init__(self, rate_per_s: float, clock: Clock = time.monotonic) -> None:
        if not rate_per_s > 0:
            raise ValueError(f"rate_per_s must be positive, got {rate_per_s!r}")
        self._interval = 1.0 / rate_per_s
        self._clock = clock
        self._next = float("-inf")

    @property
    def interval_s(self) -> float:
        return self._interval

    def delay(self) -> float:
        """Seconds until the next event is allowed (0.0 when it is allowed now)."""
        return max(0.0, self._next - self._clock())

    def try_acquire(self) -> bool:
        """Take the slot if it is due; the next one is due a full interval from now."""
        now = self._clock()
        if now < self._next:
            return False
        # Counting from now, not from the missed slot, is what forbids catch-up bursts.
        self._next = now + self._interval
        return True


def registration_backoff(failures: int, *, base_s: float = 1.0, cap_s: float = 60.0) -> float:
    """Seconds to wait before re-REGISTERing after ``failures`` failures in a row.

    Exponential (1, 2, 4, ... s) up to ``cap_s``, so a registrar that is down is
    not hammered and one that comes back is found within a minute.
    """
    if failures < 1:
        return 0.0
    return float(min(cap_s, base_s * 2.0 ** min(failures - 1, 30)))
