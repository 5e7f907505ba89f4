"""The AI-agent bridge end to end: a real SIP call, the real audio tap, the reference agent over a WebSocket.

baresip answers, sends a 400 Hz tone and records what it hears; sipp plays
RFC 2833 keys (PT 101) for the DTMF test and hangs up by itself for the
callee-hangs-up test. The flow is the issue's: one ``stream`` step whose
``on_failure`` plays an apology prompt (700 Hz here, so the recording tells
which one the callee heard).
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sandbox.agent_demo import AgentScript
from shared.flow import parse_flow, validate_flow
from shared.flow.model import Flow
from tests.support.agent import dominant_hz as pcm_dominant_hz
from tests.support.agent import running_agent
from tests.support.baresip import BARESIP, dominant_hz, read_wav, start_baresip_callee, write_tone
from tests.support.needs import unavailable
from tests.support.sipp import SippPeer, free_port
from worker.flow_runner import FlowScript
from worker.sip import SipAccountConfig, SipAgent

pytestmark = pytest.mark.integration
Sipp = Callable[..., SippPeer]


def agent_flow(url: str) -> Flow:
    return validate_flow(parse_flow(tomllib.loads(f"""
start = "agent"
[steps.agent]
stream = {{ url = "{url}" }}
on_failure = "sorry"
[steps.sorry]
play = "sorry.wav"
""")))


def loud_part(samples: Any, rate: int) -> Any:
    """The samples from the first to the last loud 20 ms frame."""
    n = rate // 50
    frames = samples[: len(samples) // n * n].reshape(-1, n)
    loud = np.flatnonzero(np.sqrt((frames ** 2).mean(axis=1)) > 1000)
    assert len(loud), "the callee heard nothing"
    return frames[loud[0]:loud[-1] + 1].reshape(-1)


def sip_agent(address: str) -> SipAgent:
    sip = SipAgent(SipAccountConfig(registrar=address, username="dialer", password="unused", register=False))
    sip.start()
    return sip


@pytest.fixture
def sorry_wav(tmp_path: Path) -> Path:
    return write_tone(tmp_path / "sorry.wav", 1.0, 700.0)


@pytest.fixture
def callee(tmp_path: Path) -> Iterator[Any]:
    if not Path(BARESIP).exists():
        unavailable("baresip is not installed (Debian package baresip-core)")
    peer = start_baresip_callee(tmp_path / "baresip", source_hz=400.0)
    yield peer
    peer.stop()


def call(address: str, uri: str, flow: Flow, prompts: dict[str, str]) -> dict[str, Any]:
    sip = sip_agent(address)
    try:
        script = FlowScript(flow, prompts, stream_params={"campaign": "spring", "first_name": "Li"})
        result = sip.call(uri, timeout_s=40, script_factory=lambda: script)
        assert result.answered and result.flow is not None
        return dict(result.flow)
    finally:
        sip.stop(grace_s=0)


def test_agent_and_callee_hear_each_other(callee: Any, sorry_wav: Path) -> None:
    """The agent's 1 kHz greeting reaches baresip, baresip's 400 Hz reaches the agent, the agent's result and
    hangup end the call, and the flow log carries result, disposition and agent_result."""
    script = AgentScript(tone_hz=1000, greeting_s=1.5, listen_s=2.5, echo=False)
    with running_agent(script) as agent:
        flow = call(callee.address, callee.uri(), agent_flow(f"ws://127.0.0.1:{agent.port}/agent"),
                    {"sorry": str(sorry_wav)})
    callee.stop()
    [entry] = flow["steps"]
    assert (entry["action"], entry["result"], entry["disposition"]) == ("stream", "hangup", "interested")
    assert entry["agent_result"]["disposition"] == "interested"
    assert flow["outcome"] == "answered" and flow["ended_by"] == "flow"
    heard = agent.streams[0]
    assert heard.start["customParameters"] == {"campaign": "spring", "first_name": "Li"}
    assert pcm_dominant_hz(heard.pcm[8000:]) == pytest.approx(400, abs=10)  # after the first 0.5 s
    samples, rate = read_wav(callee.recordings()[0])
    tone = loud_part(samples, rate)
    assert len(tone) / rate == pytest.approx(1.5, abs=0.1)  # the whole greeting, once
    assert dominant_hz(tone, rate) == pytest.approx(1000, abs=10)
    assert [name for name, _ in heard.marks] == ["greeting"]
    [stats] = flow["agent"]
    assert stats["out_dropped"] == 0 and stats["tap"]["errors"] == 0 and stats["faults"] == {}


def test_unreachable_agent_plays_the_fallback(callee: Any, sorry_wav: Path) -> None:
    """Nothing listens at the agent's URL: the on_failure prompt is heard and the outcome is agent_unavailable."""
    flow = call(callee.address, callee.uri(), agent_flow(f"ws://127.0.0.1:{free_port()}/agent"),
                {"sorry": str(sorry_wav)})
    callee.stop()
    assert [(s["action"], s["result"]) for s in flow["steps"]] == [("stream", "agent_unavailable"),
                                                                   ("play", "played")]
    assert "ConnectionRefused" in flow["steps"][0]["detail"]
    assert flow["outcome"] == "agent_unavailable"
    samples, rate = read_wav(callee.recordings()[0])
    assert dominant_hz(loud_part(samples, rate), rate) == pytest.approx(700, abs=10)


def test_dropped_agent_takes_the_fallback(callee: Any, sorry_wav: Path) -> None:
    """The agent's connection is cut mid-call: agent_lost, then the fallback prompt, no crash."""
    with running_agent(AgentScript(tone_hz=1000, greeting_s=0.5, drop_after_s=1.0)) as agent:
        flow = call(callee.address, callee.uri(), agent_flow(f"ws://127.0.0.1:{agent.port}/agent"),
                    {"sorry": str(sorry_wav)})
    assert [(s["action"], s["result"]) for s in flow["steps"]] == [("stream", "agent_lost"), ("play", "played")]


def test_dtmf_reaches_the_agent(sipp_uas: Sipp, sorry_wav: Path) -> None:
    """sipp's RFC 2833 keys 1 and 9 (PT 101) reach the agent as dtmf events; "1" makes it report interested."""
    peer = sipp_uas("dtmf_2833", extra_args=["-mp", str(free_port())])
    with running_agent(AgentScript(tone_hz=1000, greeting_s=0.5, listen_s=15.0)) as agent:
        flow = call(peer.address, f"sip:callee@{peer.address}", agent_flow(f"ws://127.0.0.1:{agent.port}/agent"),
                    {"sorry": str(sorry_wav)})
    assert agent.streams[0].dtmf[:1] == ["1"]
    assert flow["steps"][0]["disposition"] == "interested" and flow["digits"].startswith("1")


def test_callee_hangs_up_while_the_agent_talks(sipp_uas: Sipp, sorry_wav: Path) -> None:
    """The callee hangs up during a long greeting: the stream stops (the agent gets stop), the log says remote."""
    peer = sipp_uas("remote_bye", pause_ms=1500)
    with running_agent(AgentScript(tone_hz=1000, greeting_s=20.0, listen_s=30.0)) as agent:
        flow = call(peer.address, f"sip:callee@{peer.address}", agent_flow(f"ws://127.0.0.1:{agent.port}/agent"),
                    {"sorry": str(sorry_wav)})
        stream = agent.streams[0]
        for _ in range(200):  # the stop reaches the agent asynchronously; no event crosses to this thread
            if stream.ended:
                break
            time.sleep(0.02)
    assert [(s["action"], s["result"]) for s in flow["steps"]] == [("stream", "remote_hangup")]
    assert flow["ended_by"] == "remote"
    assert stream.ended and "stop" in stream.events


def test_clear_cuts_the_greeting_the_callee_hears(callee: Any, sorry_wav: Path) -> None:
    """The agent clears its 4 s greeting after 1 s: baresip hears about a second of it, not four."""
    script = AgentScript(tone_hz=1000, greeting_s=4.0, clear_after_s=1.0, listen_s=1.5, echo=False)
    with running_agent(script) as agent:
        flow = call(callee.address, callee.uri(), agent_flow(f"ws://127.0.0.1:{agent.port}/agent"),
                    {"sorry": str(sorry_wav)})
    callee.stop()
    assert flow["steps"][0]["result"] == "hangup"
    [stats] = flow["agent"]
    assert stats["cleared"] > 100  # most of the 200 greeting frames were thrown away
    samples, rate = read_wav(callee.recordings()[0])
    assert len(loud_part(samples, rate)) / rate < 2.0


def test_garbage_from_the_agent_costs_nothing_but_counters(callee: Any, sorry_wav: Path) -> None:
    """Broken JSON, an unknown event, bad base64 and odd-sized audio on a real call: counted, and the agent's
    greeting and result still arrive."""
    script = AgentScript(tone_hz=1000, greeting_s=1.0, listen_s=1.0, echo=False, garbage=True)
    with running_agent(script) as agent:
        flow = call(callee.address, callee.uri(), agent_flow(f"ws://127.0.0.1:{agent.port}/agent"),
                    {"sorry": str(sorry_wav)})
    callee.stop()
    assert flow["steps"][0]["disposition"] == "interested"
    [stats] = flow["agent"]
    assert stats["faults"] == {"bad_json": 1, "unknown_event": 1, "bad_audio": 1} and stats["in_odd_sizes"] == 1
    samples, rate = read_wav(callee.recordings()[0])
    assert dominant_hz(loud_part(samples, rate), rate) == pytest.approx(1000, abs=10)
