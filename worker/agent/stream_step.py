"""A flow's ``stream`` step on the SIP thread: attach the tap, start the bridge, turn its news into engine events.

The flow runner (:mod:`worker.flow_runner`) owns one :class:`StreamStep` per
call and calls it only from AnswerScript callbacks, i.e. on the SIP thread.
What it does there is small and never waits: create the tap and attach it
through the call's media control (pjsua2 calls, which belong on this thread),
hand the bridge to the agent loop, pop the bridge's event deque each turn,
push DTMF digits, and on stop detach the tap (stopTransmit both ways and an
explicit destroy, see :mod:`worker.sip.audio_tap`).

A media control that cannot carry a stream (no ``attach_tap``: not a real
call), a call with no audio, or a provider that cannot be built, all come
back as a ``failed`` event: the engine takes the step's ``on_failure`` branch
and the outcome says ``agent_unavailable``, never a silent call.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from shared.flow.model import Step
from shared.flow.signals import StreamEvent
from worker.agent.bridge import Bridge
from worker.agent.media_streams import MediaStreamsSession
from worker.agent.provider import AgentSession, Endpoint, StreamStart
from worker.sip.audio_tap import AudioTap

log = logging.getLogger(__name__)

SessionFactory = Callable[[Step], AgentSession]
_KINDS = frozenset({"opened", "failed", "result", "transfer", "hangup", "ended"})


@runtime_checkable
class TapControl(Protocol):
    """What a MediaControl offers for streams (worker.sip.media.control.CallMedia). SIP thread only."""

    def attach_tap(self, tap: AudioTap) -> None: ...

    def detach_tap(self) -> None: ...


def media_streams_session(step: Step) -> AgentSession:
    """The default provider: a Twilio Media Streams agent at the step's URL."""
    return MediaStreamsSession(Endpoint(step.url, step.token_env or None))


class StreamStep:
    """One call's agent streams (a flow may stream more than once). Every method on the SIP thread."""

    def __init__(self, custom: Mapping[str, str], *, call_id: str = "",
                 session_factory: SessionFactory = media_streams_session) -> None:
        self._custom = {str(k): str(v) for k, v in custom.items()}
        self._call_id = call_id or f"CA{uuid.uuid4().hex}"
        self._factory = session_factory
        self._bridge: Bridge | None = None
        self._ctl: TapControl | None = None
        self._stats: list[dict[str, Any]] = []
        self._waiting: list[StreamEvent] = []

    def start(self, step: Step, ctl: object, now: float) -> None:
        """Attach a tap and open the agent; any failure becomes a ``failed`` event for the next poll."""
        if not isinstance(ctl, TapControl):
            self._waiting.append(StreamEvent("failed", now, detail="this call's media cannot be streamed"))
            return
        tap = AudioTap(name=f"agent-{step.id}", max_rx_frames=100, max_tx_frames=25)
        try:
            session = self._factory(step)
            ctl.attach_tap(tap)
        except Exception as exc:  # MediaError, a provider's constructor: the fallback, not a crash
            self._waiting.append(StreamEvent("failed", now, detail=f"{type(exc).__name__}: {str(exc)[:160]}"))
            return
        self._ctl = ctl
        start = StreamStart(f"MZ{uuid.uuid4().hex}", self._call_id, self._custom)
        self._bridge = Bridge(session, tap, start)
        self._bridge.begin()

    def poll(self, now: float) -> list[StreamEvent]:
        """What the agent did since the last turn, as engine events."""
        events, self._waiting = self._waiting, []
        if self._bridge is not None:
            for ev in self._bridge.events():
                if ev.kind in _KINDS:
                    events.append(StreamEvent(ev.kind, now, result=ev.result, target=ev.target,  # type: ignore[arg-type]
                                              detail=ev.detail))
        return events

    def dtmf(self, digit: str) -> None:
        if self._bridge is not None:
            self._bridge.dtmf(digit)

    @property
    def active(self) -> bool:
        return self._bridge is not None

    def stop(self) -> None:
        """Detach the tap (SIP thread) and let the bridge say stop and close (agent loop)."""
        bridge, ctl = self._bridge, self._ctl
        self._bridge, self._ctl = None, None
        if ctl is not None:
            try:
                ctl.detach_tap()
            except Exception as exc:  # the call's media may already be gone; the port is freed either way
                log.warning("detaching the agent tap: %s", exc)
        if bridge is not None:
            bridge.end()
            self._stats.append({**bridge.stats(), "fault_details": list(bridge.fault_details),
                                "latency_ms": bridge.latency_ms()})

    def report(self) -> list[dict[str, Any]]:
        """Each stream's counters: frames both ways, drops, marks, DTMF, faults by kind."""
        return list(self._stats)
