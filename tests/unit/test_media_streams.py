"""The Media Streams codec: µ-law tables, our messages, and total parsing of what an agent sends."""

from __future__ import annotations

import base64
import json
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared import media_streams as ms
from tests.support.needs import need_module


def test_ulaw_matches_the_standard_library_reference() -> None:
    """Every int16 sample encodes to the same byte as CPython's audioop (G.711), and every byte decodes alike."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = need_module("audioop", "CPython's standard library up to 3.12: the G.711 reference")
    pcm = np.arange(-32768, 32768, dtype="<i2").tobytes()
    assert ms.ulaw_encode(pcm) == audioop.lin2ulaw(pcm, 2)
    every_byte = bytes(range(256))
    assert ms.ulaw_decode(every_byte) == audioop.ulaw2lin(every_byte, 2)


def test_ulaw_round_trip_keeps_a_tone() -> None:
    """A 1 kHz tone survives encode+decode within G.711's quantisation (under 4% of the sample)."""
    t = np.arange(1600) / 8000
    tone = (12000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    back = np.frombuffer(ms.ulaw_decode(ms.ulaw_encode(tone)), dtype="<i2")
    loud = np.abs(tone) > 500
    assert np.max(np.abs(back[loud] - tone[loud]) / np.abs(tone[loud])) < 0.04


def test_resample_16k_to_8k_and_back_keeps_the_frequency() -> None:
    """Resampling a 440 Hz tone 8k -> 16k -> 8k keeps its length and dominant frequency."""
    t = np.arange(8000) / 8000
    tone = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    up = ms.resample(tone, 8000, 16000)
    assert len(up) == 16000
    down = ms.resample(up, 16000, 8000)
    assert len(down) == 8000
    assert abs(np.argmax(np.abs(np.fft.rfft(down))) - 440) <= 1


def test_our_messages_follow_twilio_shapes() -> None:
    """start carries ids, custom parameters and the µ-law format; media counts sequence, chunk and time."""
    enc = ms.Encoder(ms.StreamIds("MZ1", "CA1", custom={"campaign": "spring", "name": "Li"}))
    assert json.loads(enc.connected())["event"] == "connected"
    start = json.loads(enc.start())
    assert start["sequenceNumber"] == "1" and start["streamSid"] == "MZ1"
    assert start["start"]["customParameters"] == {"campaign": "spring", "name": "Li"}
    assert start["start"]["mediaFormat"] == {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
    first, second = json.loads(enc.media(bytes(160))), json.loads(enc.media(b"\x7f" * 160))
    assert (first["sequenceNumber"], first["media"]["chunk"], first["media"]["timestamp"]) == ("2", "1", "0")
    assert (second["sequenceNumber"], second["media"]["chunk"], second["media"]["timestamp"]) == ("3", "2", "20")
    assert ms.media_payload(second) == b"\x7f" * 160 and second["media"]["track"] == "inbound"
    assert json.loads(enc.dtmf("5"))["dtmf"] == {"track": "inbound_track", "digit": "5"}
    assert json.loads(enc.mark("m1"))["mark"] == {"name": "m1"}
    assert json.loads(enc.stop())["stop"]["callSid"] == "CA1"


def test_agent_messages_parse() -> None:
    """media, mark, clear, result, transfer and hangup from the agent become typed messages."""
    assert ms.parse_agent(ms.agent_media("MZ", b"\x01" * 160)) == ms.Media(b"\x01" * 160)
    assert ms.parse_agent(ms.agent_event("MZ", "mark", mark={"name": "x"})) == ms.Mark("x")
    assert ms.parse_agent(ms.agent_event("MZ", "clear")) == ms.Clear()
    result = ms.parse_agent(ms.agent_event("MZ", "result", result={"disposition": "interested", "notes": "ok"}))
    assert isinstance(result, ms.Result) and result.disposition == "interested"
    assert ms.parse_agent(ms.agent_event("MZ", "transfer", transfer={"target": "sip:sales@pbx"})) == \
        ms.TransferRequest("sip:sales@pbx")
    assert ms.parse_agent(ms.agent_event("MZ", "hangup")) == ms.HangupRequest()
    assert ms.parse_agent(ms.agent_event("MZ", "stop")) is None


@pytest.mark.parametrize(("text", "kind"), [
    ("{not json", "bad_json"),
    ("[1, 2]", "bad_json"),
    ('{"event": "dance"}', "unknown_event"),
    ('{"event": "media", "media": {"payload": "@@@"}}', "bad_audio"),
    ('{"event": "media", "media": {"payload": ""}}', "bad_audio"),
    ('{"event": "media", "media": 7}', "bad_audio"),
    ('{"event": "media", "media": {"payload": "' + base64.b64encode(bytes(90_000)).decode() + '"}}', "bad_audio"),
    ('{"event": "mark", "mark": "x"}', "bad_message"),
    ('{"event": "result", "result": "yes"}', "bad_message"),
    ('{"event": "result", "result": {"disposition": "VERY INTERESTED!!"}}', "bad_disposition"),
    ('{"event": "transfer", "transfer": {"target": "http://x"}}', "bad_message"),
])
def test_bad_agent_messages_are_faults_not_exceptions(text: str, kind: str) -> None:
    """Garbage, unknown events, undecodable or oversized audio each come back as one named Fault."""
    fault = ms.parse_agent(text)
    assert isinstance(fault, ms.Fault) and fault.kind == kind, fault


@given(st.one_of(st.text(max_size=300), st.binary(max_size=50),
                 st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                              lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                                  st.sampled_from(["event", "media", "payload", "mark", "name", "result",
                                                   "transfer", "target"]), inner, max_size=4),
                              max_leaves=12).map(json.dumps)))
def test_parse_agent_never_raises(text: str | bytes) -> None:
    """Whatever arrives, parse_agent returns a message, a Fault or None."""
    out = ms.parse_agent(text)
    assert out is None or isinstance(out, ms.Fault | ms.Media | ms.Mark | ms.Clear | ms.Result |
                                      ms.TransferRequest | ms.HangupRequest)


def test_agent_urls_in_messages_lose_user_info_and_query() -> None:
    """A token someone put in the agent's URL never reaches an error message or the flow log."""
    from worker.agent.media_streams import safe_url

    assert safe_url("wss://bot:pw@agent.example:8443/agent?token=abc#x") == "wss://agent.example:8443/agent"
    assert safe_url("ws://127.0.0.1/agent") == "ws://127.0.0.1/agent"
