"""Test support for the agent bridge: the reference agent on a thread, and a clocked stand-in for the tap.

:class:`ClockedTap` has the any-thread surface of :class:`worker.sip.audio_tap.AudioTap`
and a 20 ms clock thread of its own that, like pjmedia's, pops one frame to
"send" and pushes one received frame per tick; it records what it sent, so a
test can check what the callee would have heard without a SIP call. The
end-to-end tests use the real tap and real peers.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from sandbox.agent_demo import AgentScript, DemoAgent

FRAME = 320


def tone(hz: float, seconds: float, amplitude: float = 12000.0) -> bytes:
    t = np.arange(int(seconds * 8000)) / 8000
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()


def dominant_hz(pcm: bytes | bytearray) -> float:
    samples = np.frombuffer(bytes(pcm), dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * 8000 / len(samples))


class ClockedTap:
    """A tap whose clock thread sends queued frames (recording them) and receives ``source`` in a loop."""

    def __init__(self, source: bytes = b"", *, max_rx: int = 250, max_tx: int = 50) -> None:
        self._rx: deque[tuple[float, bytes]] = deque(maxlen=max_rx)
        self._tx: deque[bytes] = deque()
        self._max_tx = max_tx
        self._lock = threading.Lock()
        self.source = source
        self.sent: list[tuple[float, bytes]] = []  # (time, frame): silence is recorded as zeros
        self.counts = {"rx_frames": 0, "rx_dropped": 0, "tx_frames": 0, "tx_underruns": 0, "tx_dropped": 0,
                       "errors": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._clock, daemon=True)
        self._thread.start()

    def _clock(self) -> None:
        offset, tick = 0, time.monotonic()
        while not self._stop.is_set():
            tick += 0.02
            time.sleep(max(0.0, tick - time.monotonic()))
            now = time.monotonic()
            if self.source:
                frame = self.source[offset:offset + FRAME]
                offset = (offset + FRAME) % len(self.source)
                if len(frame) == FRAME:
                    if len(self._rx) == self._rx.maxlen:
                        self.counts["rx_dropped"] += 1
                    self._rx.append((now, frame))
                    self.counts["rx_frames"] += 1
            try:
                out = self._tx.popleft()
                self.counts["tx_frames"] += 1
            except IndexError:
                out = bytes(FRAME)
                self.counts["tx_underruns"] += 1
            self.sent.append((now, out))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def read_timed(self) -> list[tuple[float, bytes]]:
        out = []
        while self._rx:
            out.append(self._rx.popleft())
        return out

    def write(self, pcm: bytes) -> int:
        with self._lock:
            if len(self._tx) >= self._max_tx:
                self.counts["tx_dropped"] += 1
                return 0
            self._tx.append(pcm)
            return 1

    def clear(self) -> int:
        with self._lock:
            n = len(self._tx)
            self._tx.clear()
            return n

    def stats(self) -> dict[str, int]:
        return dict(self.counts)

    def heard(self, since: float = 0.0) -> bytes:
        return b"".join(frame for t, frame in self.sent if t >= since)


@contextmanager
def running_agent(script: AgentScript) -> Iterator[DemoAgent]:
    """The reference agent on its own thread and loop, on a free port, until the block ends."""
    agent = DemoAgent(script)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()

    async def main() -> None:
        started = asyncio.Event()
        task = asyncio.create_task(agent.serve(port=0, ready=started, stop=stop))
        await started.wait()
        ready.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("the reference agent did not start")
    try:
        yield agent
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(20)
        if not thread.is_alive():
            loop.close()
