"""The bridge against the reference agent over a real WebSocket, with a clocked stand-in for the tap.

These pin the bridge's own rules (audio both ways, marks, clear, DTMF,
results, auth, faults, bounded queues); the same agent against a real SIP
callee through the real tap is tests/integration/test_agent_call.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from sandbox.agent_demo import AgentScript, DemoAgent
from tests.support.agent import ClockedTap, dominant_hz, running_agent, tone
from worker.agent.bridge import Bridge, BridgeEvent
from worker.agent.media_streams import MediaStreamsSession
from worker.agent.provider import Endpoint, StreamStart

pytestmark = pytest.mark.integration


def url(agent: DemoAgent) -> str:
    return f"ws://127.0.0.1:{agent.port}/agent"


@contextmanager
def bridged(endpoint: Endpoint, source: bytes = b"", **options: object) -> Iterator[tuple[Bridge, ClockedTap]]:
    tap = ClockedTap(source)
    bridge = Bridge(MediaStreamsSession(endpoint), tap, StreamStart("MZtest", "CAtest", {"campaign": "spring"}),
                    **options)  # type: ignore[arg-type]
    bridge.begin()
    try:
        yield bridge, tap
    finally:
        bridge.end()
        tap.stop()


def wait_for(bridge: Bridge, kind: str, seen: list[BridgeEvent], timeout_s: float = 20.0) -> BridgeEvent:
    """Collect events until one of ``kind`` arrives (the timeout only guards a broken run)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen.extend(bridge.events())
        for event in seen:
            if event.kind == kind:
                return event
        time.sleep(0.02)
    raise AssertionError(f"no {kind!r} event; got {[e.kind for e in seen]}")


def test_audio_both_ways_marks_and_result() -> None:
    """The callee's 400 Hz reaches the agent, the agent's 1 kHz greeting reaches the callee, its mark comes
    back once played, and the agent's result and hangup arrive as events; start carries the custom parameters."""
    with running_agent(AgentScript(tone_hz=1000, greeting_s=1.0, listen_s=2.0, echo=False)) as agent, \
            bridged(Endpoint(url(agent)), tone(400, 1.0)) as (bridge, tap):
        seen: list[BridgeEvent] = []
        result = wait_for(bridge, "result", seen)
        wait_for(bridge, "hangup", seen)
        heard = agent.streams[0]
        assert heard.start["customParameters"] == {"campaign": "spring"}
        assert heard.start["mediaFormat"]["encoding"] == "audio/x-mulaw"
        assert result.result is not None and result.result["disposition"] == "interested"
        assert dominant_hz(heard.pcm) == pytest.approx(400, abs=10)
        assert heard.sequence == sorted(heard.sequence)
        loud = [f for _, f in tap.sent if np.abs(np.frombuffer(f, "<i2")).max() > 3000]
        assert len(loud) >= 45  # the 1 s greeting: 50 frames (a frame at each edge may straddle)
        assert dominant_hz(b"".join(loud)) == pytest.approx(1000, abs=10)
        assert [name for name, _ in heard.marks] == ["greeting"]
        assert bridge.stats()["out_dropped"] == 0


def test_dtmf_reaches_the_agent_and_decides_the_disposition() -> None:
    """A key pressed by the callee reaches the agent as a dtmf event; "2" makes its result not_interested."""
    with running_agent(AgentScript(tone_hz=600, greeting_s=0.4, listen_s=10.0)) as agent, \
            bridged(Endpoint(url(agent))) as (bridge, _):
        seen: list[BridgeEvent] = []
        wait_for(bridge, "opened", seen)
        bridge.dtmf("2")
        result = wait_for(bridge, "result", seen)
        assert agent.streams[0].dtmf == ["2"]
        assert result.result is not None and result.result["disposition"] == "not_interested"


def test_clear_stops_playback_within_one_batch() -> None:
    """After the agent's clear, at most one tap batch (tap_depth frames) of its greeting is still played."""
    with running_agent(AgentScript(tone_hz=1000, greeting_s=5.0, clear_after_s=0.6, listen_s=1.0)) as agent, \
            bridged(Endpoint(url(agent))) as (bridge, tap):
        seen: list[BridgeEvent] = []
        wait_for(bridge, "result", seen)
        assert bridge.cleared_at is not None
        after = [f for t, f in tap.sent if t > bridge.cleared_at and np.abs(np.frombuffer(f, "<i2")).max() > 3000]
        assert len(after) <= bridge.playout.tap_depth
        assert bridge.stats()["cleared"] > 100  # most of the 5 s greeting (250 frames) was thrown away
        assert [name for name, _ in agent.streams[0].marks] == ["greeting"]  # answered by the clear


def test_bearer_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The token named by token_env goes in the Authorization header; a wrong one fails without showing it."""
    monkeypatch.setenv("TEST_AGENT_TOKEN", "s3cret-right")
    with running_agent(AgentScript(tone_hz=500, greeting_s=0.2, listen_s=0.5, token="s3cret-right")) as agent:
        with bridged(Endpoint(url(agent), token_env="TEST_AGENT_TOKEN")) as (bridge, _):
            wait_for(bridge, "result", [])
        monkeypatch.setenv("TEST_AGENT_TOKEN", "s3cret-wrong")
        with bridged(Endpoint(url(agent), token_env="TEST_AGENT_TOKEN")) as (bridge, _):
            failed = wait_for(bridge, "failed", [])
        assert "s3cret" not in failed.detail and "InvalidStatus" in failed.detail
    monkeypatch.delenv("TEST_AGENT_TOKEN")
    with bridged(Endpoint("ws://127.0.0.1:9/agent", token_env="TEST_AGENT_TOKEN")) as (bridge, _):
        assert "TEST_AGENT_TOKEN" in wait_for(bridge, "failed", []).detail


def test_unreachable_agent_fails_fast() -> None:
    """Nobody listening: one failed event naming the URL, no opened."""
    with bridged(Endpoint("ws://127.0.0.1:9/agent", open_timeout_s=1.0)) as (bridge, _):
        seen: list[BridgeEvent] = []
        failed = wait_for(bridge, "failed", seen)
        assert "127.0.0.1:9" in failed.detail and not any(e.kind == "opened" for e in seen)


def test_dropped_connection_ends_the_stream() -> None:
    """The agent's TCP connection cut mid-call: the stream ends with reason dropped."""
    with running_agent(AgentScript(tone_hz=500, greeting_s=0.5, drop_after_s=0.5)) as agent, \
            bridged(Endpoint(url(agent)), tone(400, 1.0)) as (bridge, _):
        ended = wait_for(bridge, "ended", [])
        assert ended.detail.startswith("dropped")


def test_garbage_from_the_agent_is_counted_and_the_call_goes_on() -> None:
    """Broken JSON, an unknown event, bad base64 and odd-sized audio are counted; the result still arrives."""
    with running_agent(AgentScript(tone_hz=500, greeting_s=0.3, listen_s=0.5, garbage=True)) as agent, \
            bridged(Endpoint(url(agent))) as (bridge, _):
        wait_for(bridge, "result", [])
        stats = bridge.stats()
        assert stats["faults"] == {"bad_json": 1, "unknown_event": 1, "bad_audio": 1}
        assert stats["in_odd_sizes"] == 1
        assert len(bridge.fault_details) == 3 and agent.streams


def test_slow_agent_costs_dropped_frames_not_memory() -> None:
    """An agent that stops reading: the outbound queue stays at its bound and the overflow is counted."""
    with running_agent(AgentScript(tone_hz=500, greeting_s=0.2, listen_s=6.0, stall_s=5.0)) as agent, \
            bridged(Endpoint(url(agent)), tone(400, 1.0), out_max=10) as (bridge, tap):
        wait_for(bridge, "opened", [])
        deadline = time.monotonic() + 20
        while bridge.stats()["out_dropped"] == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert bridge.out_dropped > 0
        assert len(bridge._out) <= 10
        assert tap.stats()["rx_dropped"] == 0  # the tap itself is drained: the bridge drops, not the call
        assert agent.streams
