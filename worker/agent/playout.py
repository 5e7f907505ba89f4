"""The jitter buffer on the way back (agent -> callee), and the bookkeeping of ``mark`` and ``clear``. Pure.

Agents send audio in bursts (a TTS sentence at once, faster than real time)
or unevenly (a network hiccup). The buffer re-frames whatever arrives into
20 ms frames, holds at most ``max_frames`` (the rest is dropped and counted:
memory stays flat whatever the agent does), waits for ``prefill`` frames
before it starts talking after a silence, and hands the tap only a few frames
at a time (``tap_depth``), so that ``clear`` (barge-in) silences the callee
within that one small batch.

Standing delay: an agent that talks in real time (one frame per 20 ms) keeps
whatever queue its network jitter or a late tick of ours once built, for
good, since frames leave exactly as fast as they come (a 5-minute soak
drifted to 1.9 s). So once a second, if the agent streamed at about real
time (40-60 frames in that second) and the queue never fell to
``max_backlog`` or below in it, the surplus is skipped, one frame per
``take``, as pjmedia's own jitter buffer discards; skips are counted. A TTS
burst (faster than real time) or its tail (slower) is never cut.

Marks: every frame accepted gets a running index; a mark is placed after the
last frame accepted before it and answered once that many frames have been
*consumed*: played by the tap's clock, or thrown away by ``clear`` (Twilio
answers every pending mark on clear).
"""

from __future__ import annotations

import time
from collections import deque

FRAME_BYTES = 320  # 20 ms of PCM16 at 8 kHz


class Playout:
    """Frames from the agent waiting to be played. Used by one thread (the bridge's asyncio thread)."""

    def __init__(self, *, max_frames: int = 1500, prefill: int = 1, tap_depth: int = 1,
                 max_backlog: int = 1) -> None:
        self.max_frames = max_frames
        self.max_backlog = max_backlog
        self._arrived_in_window = 0
        self._window_end: float | None = None
        self._window_min: int | None = None
        self._to_skip = 0
        self.skipped = 0  # frames skipped to keep a real-time agent's backlog short
        self.prefill = prefill
        self.tap_depth = tap_depth
        self._frames: deque[tuple[float, bytes]] = deque()  # (when it came from the agent, frame)
        self._in_tap: deque[float] = deque()  # arrival times of frames handed to the tap, not yet played
        self.latency: deque[float] = deque(maxlen=20_000)  # agent message -> played by the tap
        self._partial = b""
        self._marks: deque[tuple[int, str]] = deque()
        self.accepted = 0  # frames ever accepted (the index of the next one)
        self.played_total = 0  # frames the tap has sent toward the callee
        self._clear_floor = 0  # every frame accepted before the last clear counts as consumed
        self.dropped = 0  # frames refused because the buffer was full
        self.odd_sizes = 0  # messages that were not whole 20 ms frames (re-framed, not an error)
        self.cleared = 0
        self._talking = False

    def push(self, pcm: bytes, now: float | None = None) -> None:
        """Audio from the agent, any length; whole frames are queued, the rest waits for the next push."""
        now = time.monotonic() if now is None else now
        if len(pcm) % FRAME_BYTES:
            self.odd_sizes += 1
        data = self._partial + pcm
        whole = len(data) - len(data) % FRAME_BYTES
        self._partial = data[whole:]
        for start in range(0, whole, FRAME_BYTES):
            if len(self._frames) >= self.max_frames:
                self.dropped += (whole - start) // FRAME_BYTES
                return
            self._frames.append((now, data[start:start + FRAME_BYTES]))
            self._arrived_in_window += 1
            self.accepted += 1

    def mark(self, name: str) -> None:
        """The agent's mark after everything accepted so far."""
        self._marks.append((self.accepted, name))

    def take(self, in_tap: int, now: float | None = None) -> list[bytes]:
        """Frames to hand the tap now, given ``in_tap`` frames still queued there."""
        self._trim(time.monotonic() if now is None else now)
        if not self._talking:
            if len(self._frames) < self.prefill or not self._frames:
                return []
            self._talking = True
        want = self.tap_depth - in_tap
        out: list[bytes] = []
        while want > 0 and self._frames:
            at, frame = self._frames.popleft()
            out.append(frame)
            self._in_tap.append(at)
            want -= 1
        if not self._frames and in_tap + len(out) == 0:
            self._talking = False  # ran dry: prefill again before the next sentence
        left = len(self._frames)  # what waits after this hand-over: the standing queue
        self._window_min = left if self._window_min is None else min(self._window_min, left)
        return out

    def _trim(self, now: float) -> None:
        """Once a second: a real-time stream whose queue never drained below max_backlog loses the surplus."""
        if self._window_end is None:
            self._window_end = now + 1.0
        elif now >= self._window_end:
            standing = self._window_min or 0
            if 40 <= self._arrived_in_window <= 60 and standing > self.max_backlog:
                self._to_skip = standing - self.max_backlog
            self._window_end, self._window_min, self._arrived_in_window = now + 1.0, None, 0
        if self._to_skip and self._frames:
            self._frames.popleft()
            self._to_skip -= 1
            self.skipped += 1

    def played(self, total: int, now: float | None = None) -> None:
        """``total`` frames have now left the tap toward the callee (a running count), seen at ``now``."""
        newly = total - self.played_total
        if newly <= 0:
            return
        self.played_total = total
        now = time.monotonic() if now is None else now
        for _ in range(min(newly, len(self._in_tap))):
            self.latency.append(now - self._in_tap.popleft())

    @property
    def consumed(self) -> int:
        """Frames played or thrown away by clear: marks up to here are answered."""
        return max(self.played_total + self.cleared + self.skipped, self._clear_floor)

    def clear(self, tap_dropped: int) -> list[str]:
        """Barge-in: drop everything queued here (and ``tap_dropped`` frames the tap dropped); the marks answered."""
        dropped = len(self._frames) + tap_dropped
        self._frames.clear()
        self._in_tap.clear()
        self._to_skip = 0
        self._partial = b""
        self._talking = False
        self.cleared += dropped
        self._clear_floor = self.accepted
        names = [name for _, name in self._marks]
        self._marks.clear()
        return names

    def due_marks(self) -> list[str]:
        """Marks whose audio has all been consumed, in order."""
        names: list[str] = []
        while self._marks and self._marks[0][0] <= self.consumed:
            names.append(self._marks.popleft()[1])
        return names

    @property
    def queued(self) -> int:
        return len(self._frames)
