"""Timers run by the server thread itself: answer delays, hangups, retransmissions.

A heap of deadlines that the socket loop consults for its poll timeout, so the
whole PBX stays single-threaded (no locks around call state) and a cancelled
timer costs nothing. The clock is injectable for tests.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(order=True)
class Timer:
    """A scheduled callback; ``cancel()`` makes it a no-op."""

    due: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        """Stop the callback from running (safe to call twice, or after it ran).

        The callback is dropped too: a cancelled timer stays in the heap until its
        deadline, and a long one (the 120 s no-answer timer) must not keep the
        dialog it closes over alive that long.
        """
        self.cancelled = True
        self.callback = _nothing


def _nothing() -> None:
    """What a cancelled timer holds instead of its callback."""


class Timers:
    """A min-heap of Timer, run from one thread."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._heap: list[Timer] = []
        self._seq = itertools.count()

    def schedule(self, delay_s: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` once, ``delay_s`` seconds from now."""
        timer = Timer(self._clock() + max(0.0, delay_s), next(self._seq), callback)
        heapq.heappush(self._heap, timer)
        return timer

    def next_delay(self, ceiling: float) -> float:
        """Seconds until the next live timer is due, at most ``ceiling`` (0 when one is overdue)."""
        while self._heap and self._heap[0].cancelled:
            heapq.heappop(self._heap)
        if not self._heap:
            return ceiling
        return min(ceiling, max(0.0, self._heap[0].due - self._clock()))

    def run_due(self) -> None:
        """Run every timer whose deadline has passed, in deadline order."""
        now = self._clock()
        while self._heap and self._heap[0].due <= now:
            timer = heapq.heappop(self._heap)
            if not timer.cancelled:
                timer.cancelled = True
                timer.callback()

    def clear(self) -> None:
        """Drop every pending timer (on shutdown)."""
        self._heap.clear()
