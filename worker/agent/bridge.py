"""One call's bridge: the audio tap on one side, an agent session on the other, run on the agent loop.

Threads: the SIP thread creates the bridge, attaches the tap, calls
:meth:`Bridge.begin`, and on every loop turn pops :meth:`Bridge.events` and
pushes :meth:`Bridge.dtmf`; those are deque appends/pops and one
``call_soon_threadsafe``, nothing that waits. Everything else runs as tasks
on the agent loop (:mod:`worker.agent.loop`), which touches only the tap's
any-thread half (its deques), never the pjsua port.

Three tasks per call:

* **pump** (every 10 ms): the tap's received frames into a bounded outbound
  queue (when the agent is slow the oldest frame goes, counted as
  ``out_dropped``); frames from the jitter buffer into the tap, a couple at a
  time; marks whose audio has been played, answered; DTMF, sent;
* **send**: the outbound queue to the agent (``send_audio`` waits when the
  socket is full; the queue then overflows, never grows);
* **receive**: the agent's messages: audio into the jitter buffer, ``clear``
  empties it and the tap at once, ``mark`` placed, ``result`` / ``transfer``
  / ``hangup`` handed to the SIP thread as events; a malformed message is
  counted by kind (the first few details kept for the report).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared import media_streams as ms
from worker.agent import loop
from worker.agent.playout import Playout
from worker.agent.provider import AgentSession, AgentUnavailable, StreamStart

PUMP_S = 0.010
MAX_FAULT_DETAILS = 5


class Tap(Protocol):
    """The any-thread half of :class:`worker.sip.audio_tap.AudioTap`."""

    def read_timed(self) -> list[tuple[float, bytes]]: ...

    def write(self, pcm: bytes) -> int: ...

    def clear(self) -> int: ...

    def stats(self) -> dict[str, int]: ...


@dataclass(frozen=True)
class BridgeEvent:
    """For the SIP thread: opened, failed, result, transfer, hangup, ended."""

    kind: str
    detail: str = ""
    result: Mapping[str, Any] | None = None
    target: str | None = None


@dataclass
class Latency:
    """Bounded samples (seconds) for the bench: callee frame arrival -> sent to the agent."""

    out: deque[float] = field(default_factory=lambda: deque(maxlen=20_000))


class Bridge:
    """One call's stream. Thread-safe surface: begin, events, dtmf, end, stats."""

    def __init__(self, session: AgentSession, tap: Tap, start: StreamStart, *, out_max: int = 25,
                 playout: Playout | None = None) -> None:
        self.session = session
        self.tap = tap
        self.start = start
        self.playout = playout or Playout()
        self.latency = Latency()
        self._events: deque[BridgeEvent] = deque()
        self._dtmf: deque[str] = deque(maxlen=64)
        self._out: deque[tuple[float, bytes]] = deque()
        self._out_max = out_max
        self._out_ready: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._stopped_by_us = False
        self._written = 0
        self._tap_cleared = 0
        self._tx0 = tap.stats()["tx_frames"]
        self.out_sent = 0
        self.out_dropped = 0
        self.in_frames = 0
        self.marks_sent = 0
        self.dtmf_sent = 0
        self.faults: dict[str, int] = {}
        self.fault_details: list[str] = []
        self.opened_at: float | None = None
        self._pending_marks: list[str] = []
        self.cleared_at: float | None = None  # the last clear (for tests: nothing of before plays after it)

    # ---------------------------------------------------------------- any thread
    def begin(self) -> None:
        """Open the stream on the agent loop; the outcome arrives as an ``opened`` or ``failed`` event."""
        loop.submit(self._run())

    def events(self) -> list[BridgeEvent]:
        out: list[BridgeEvent] = []
        while True:
            try:
                out.append(self._events.popleft())
            except IndexError:
                return out

    def dtmf(self, digit: str) -> None:
        self._dtmf.append(digit)

    def end(self) -> None:
        """Stop streaming (the call or the step is over): stop is sent and the socket closed, asynchronously."""
        self._stopped_by_us = True
        loop.call_soon(self._request_stop)

    def latency_ms(self) -> dict[str, list[float]]:
        """[p50, p99, samples] each way: callee frame at the tap -> sent to the agent ("out"), and agent
        message -> played by the tap's clock ("in", seen by the 10 ms pump, so up to 10 ms late)."""
        out: dict[str, list[float]] = {}
        for name, samples in (("out", self.latency.out), ("in", self.playout.latency)):
            values = sorted(samples)
            if values:
                out[name] = [round(values[len(values) // 2] * 1000, 2),
                             round(values[min(len(values) - 1, int(len(values) * 0.99))] * 1000, 2), len(values)]
        return out

    def stats(self) -> dict[str, object]:
        p = self.playout
        return {"out_sent": self.out_sent, "out_dropped": self.out_dropped, "in_frames": p.accepted,
                "in_dropped": p.dropped, "in_odd_sizes": p.odd_sizes, "cleared": p.cleared,
                "in_skipped": p.skipped,
                "marks": self.marks_sent, "dtmf": self.dtmf_sent, "faults": dict(self.faults),
                "tap": self.tap.stats()}

    # ---------------------------------------------------------------- agent loop
    def _request_stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def _run(self) -> None:
        self._stop = asyncio.Event()
        self._out_ready = asyncio.Event()
        if self._stopped_by_us:
            return
        try:
            await self.session.open(self.start)
        except AgentUnavailable as exc:
            self._events.append(BridgeEvent("failed", str(exc)))
            return
        except Exception as exc:  # a provider bug must still take the flow's fallback, never a silent call
            self._events.append(BridgeEvent("failed", f"{type(exc).__name__}: {str(exc)[:120]}"))
            return
        self.opened_at = time.monotonic()
        self._events.append(BridgeEvent("opened"))
        tasks = [asyncio.create_task(coro) for coro in (self._receive(), self._send(), self._pump())]
        stop = asyncio.create_task(self._stop.wait())
        await asyncio.wait({tasks[0], stop}, return_when=asyncio.FIRST_COMPLETED)
        for task in (*tasks, stop):
            task.cancel()
        for task in (*tasks, stop):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self.session.close()
        reason = "stopped" if self._stopped_by_us else (self.session.close_reason or "closed")
        self._events.append(BridgeEvent("ended", reason))

    async def _receive(self) -> None:
        while True:
            event = await self.session.receive()
            if event is None:
                return
            self._on_agent(event)
            await self._send_due_marks()

    def _on_agent(self, event: Any) -> None:
        if isinstance(event, ms.Media):
            self.playout.push(event.ulaw)  # PCM: the provider decoded it
        elif isinstance(event, ms.Mark):
            self.playout.mark(event.name)
        elif isinstance(event, ms.Clear):
            self.cleared_at = time.monotonic()
            dropped = self.tap.clear()
            self._tap_cleared += dropped
            self._pending_marks = self.playout.clear(dropped)
        elif isinstance(event, ms.Result):
            self._events.append(BridgeEvent("result", result=event.result))
        elif isinstance(event, ms.TransferRequest):
            self._events.append(BridgeEvent("transfer", target=event.target))
        elif isinstance(event, ms.HangupRequest):
            self._events.append(BridgeEvent("hangup"))
        elif isinstance(event, ms.Fault):
            self.faults[event.kind] = self.faults.get(event.kind, 0) + 1
            if len(self.fault_details) < MAX_FAULT_DETAILS:
                self.fault_details.append(f"{event.kind}: {event.detail}")

    async def _send_due_marks(self) -> None:
        names, self._pending_marks = [*self._pending_marks, *self.playout.due_marks()], []
        for name in names:
            await self.session.send_mark(name)
            self.marks_sent += 1

    async def _send(self) -> None:
        assert self._out_ready is not None
        while True:
            if not self._out:
                self._out_ready.clear()
                await self._out_ready.wait()
                continue
            arrived, pcm = self._out.popleft()
            await self.session.send_audio(pcm)
            self.out_sent += 1
            self.latency.out.append(time.monotonic() - arrived)

    async def _pump(self) -> None:
        assert self._out_ready is not None
        while True:
            self._pump_once()
            await self._send_due_marks()
            while self._dtmf:
                await self.session.send_dtmf(self._dtmf.popleft())
                self.dtmf_sent += 1
            await asyncio.sleep(PUMP_S)

    def _pump_once(self) -> None:
        assert self._out_ready is not None
        frames = self.tap.read_timed()
        for item in frames:
            if len(self._out) >= self._out_max:
                self._out.popleft()
                self.out_dropped += 1
            self._out.append(item)
        if frames:
            self._out_ready.set()
        played = self.tap.stats()["tx_frames"] - self._tx0
        self.playout.played(played)
        in_tap = max(0, self._written - self._tap_cleared - played)
        for frame in self.playout.take(in_tap):
            self._written += self.tap.write(frame)
