"""The Twilio Media Streams wire protocol, pure: JSON text messages in and out, and G.711 µ-law audio.

Agent frameworks built for Twilio's ``<Stream>`` (Pipecat, LiveKit's SIP
bridge, Vocode...) speak this format, so an agent written for them talks to
the dialer unchanged. What we send, in order, for one call::

    {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    {"event": "start", "sequenceNumber": "1", "streamSid": "MZ..", "start": {"streamSid", "callSid",
     "accountSid", "tracks": ["inbound"], "customParameters": {campaign, upload columns...},
     "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}
    {"event": "media", "sequenceNumber": "2", "streamSid": "MZ..",
     "media": {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": "<base64 µ-law, 20 ms>"}}
    {"event": "dtmf", ..., "dtmf": {"track": "inbound_track", "digit": "5"}}
    {"event": "mark", ..., "mark": {"name": "greeting"}}      # the agent's audio up to that mark was played
    {"event": "stop", ..., "stop": {"accountSid", "callSid"}}

What the agent sends: ``media`` (any whole number of µ-law bytes, base64),
``mark``, ``clear`` (barge-in: drop what is queued), and the dialer's three
extras ``result`` (``{"disposition": "interested", ...}``), ``transfer``
(``{"target": "sip:..."}``) and ``hangup``.

Parsing is strict and total: :func:`parse_agent` returns a message or a
:class:`Fault` naming what was wrong (bad JSON, unknown event, bad base64,
empty or oversized audio, a disposition that is not a short word); it never
raises, so one broken message costs one counter, never the call.

µ-law uses two lookup tables built once with numpy (ITU-T G.711, bias 0x84):
65,536 entries encode any int16 sample, 256 decode a byte; a 20 ms frame is
one fancy-index each way, with no Python loop per sample.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

RATE = 8000
FRAME_SAMPLES = 160  # 20 ms at 8 kHz
MAX_AGENT_AUDIO_BYTES = 10 * RATE  # one media message: at most 10 s of µ-law
MAX_MESSAGE_CHARS = 200_000
_DISPOSITION = re.compile(r"^[a-z][a-z0-9_\-]{0,31}$")
_SIP_TARGET = re.compile(r"^(sips?|tel):[^\s<>\"]+$")


# ------------------------------------------------------------------------------------------- µ-law
def _build_tables() -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int16]]:
    """G.711 µ-law: the decode table by the standard's formula, the encode table for every int16."""
    byte = np.arange(256, dtype=np.int32) ^ 0xFF
    sign, exponent, mantissa = byte & 0x80, (byte >> 4) & 0x07, byte & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    decode = np.where(sign != 0, -magnitude, magnitude).astype(np.int16)
    sample = np.arange(-32768, 32768, dtype=np.int32) >> 2  # Sun's g711.c works on 14 bits
    negative = sample < 0
    mag = np.minimum(np.where(negative, -sample, sample) + 33, 8191)  # 8192 and up: the top code, as g711.c
    seg = np.floor(np.log2(mag)).astype(np.int32) - 5
    encode = ((seg << 4) | ((mag >> (seg + 1)) & 0x0F)) ^ np.where(negative, 0x7F, 0xFF)
    return encode.astype(np.uint8), decode


_ENCODE, _DECODE = _build_tables()


def ulaw_encode(pcm: bytes | npt.NDArray[np.int16]) -> bytes:
    """PCM16 little-endian (bytes or int16 array) -> µ-law bytes, one per sample."""
    samples = np.frombuffer(pcm, dtype="<i2") if isinstance(pcm, bytes | bytearray | memoryview) else pcm
    return bytes(_ENCODE[samples.astype(np.int32) + 32768])


def ulaw_decode(data: bytes) -> bytes:
    """µ-law bytes -> PCM16 little-endian bytes."""
    return _DECODE[np.frombuffer(data, dtype=np.uint8)].astype("<i2").tobytes()


def resample(pcm: npt.NDArray[np.int16], from_rate: int, to_rate: int) -> npt.NDArray[np.int16]:
    """Polyphase resampling (scipy) between 8 and 16 kHz for providers that want wideband PCM."""
    if from_rate == to_rate:
        return pcm
    from math import gcd

    from scipy.signal import resample_poly  # type: ignore[import-untyped]

    g = gcd(from_rate, to_rate)
    out: npt.NDArray[np.float64] = resample_poly(pcm.astype(np.float32), to_rate // g, from_rate // g)
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)


# ------------------------------------------------------------------------------------- what we send
@dataclass
class StreamIds:
    """One stream's identity and what the agent is told at start. ``custom`` holds campaign + upload columns."""

    stream_sid: str
    call_sid: str
    account_sid: str = "ACsipdialer"
    custom: Mapping[str, str] = field(default_factory=dict)


class Encoder:
    """Builds our side's messages with running sequence numbers, chunk numbers and timestamps (ms)."""

    def __init__(self, ids: StreamIds) -> None:
        self.ids = ids
        self._seq = 0
        self._chunk = 0

    def _next(self, event: str, **body: Any) -> str:
        self._seq += 1
        return json.dumps({"event": event, "sequenceNumber": str(self._seq), "streamSid": self.ids.stream_sid,
                           **body}, separators=(",", ":"))

    @staticmethod
    def connected() -> str:
        return '{"event":"connected","protocol":"Call","version":"1.0.0"}'

    def start(self) -> str:
        ids = self.ids
        return self._next("start", start={
            "streamSid": ids.stream_sid, "callSid": ids.call_sid, "accountSid": ids.account_sid,
            "tracks": ["inbound"], "customParameters": dict(ids.custom),
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": RATE, "channels": 1}})

    def media(self, ulaw: bytes) -> str:
        """One frame of the callee's audio; the timestamp counts 20 ms chunks from the stream's start."""
        self._chunk += 1
        ts = (self._chunk - 1) * len(ulaw) * 1000 // RATE
        return self._next("media", media={"track": "inbound", "chunk": str(self._chunk), "timestamp": str(ts),
                                          "payload": base64.b64encode(ulaw).decode("ascii")})

    def dtmf(self, digit: str) -> str:
        return self._next("dtmf", dtmf={"track": "inbound_track", "digit": digit})

    def mark(self, name: str) -> str:
        return self._next("mark", mark={"name": name})

    def stop(self) -> str:
        return self._next("stop", stop={"accountSid": self.ids.account_sid, "callSid": self.ids.call_sid})


# ---------------------------------------------------------------------------------- what the agent sends
@dataclass(frozen=True, slots=True)
class Media:
    ulaw: bytes


@dataclass(frozen=True, slots=True)
class Mark:
    name: str


@dataclass(frozen=True, slots=True)
class Clear:
    pass


@dataclass(frozen=True, slots=True)
class Result:
    result: Mapping[str, Any]

    @property
    def disposition(self) -> str | None:
        value = self.result.get("disposition")
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class TransferRequest:
    target: str


@dataclass(frozen=True, slots=True)
class HangupRequest:
    pass


@dataclass(frozen=True, slots=True)
class Fault:
    """A message we could not use; ``kind`` is a counter name, ``detail`` is for the call's report."""

    kind: str
    detail: str


AgentMessage = Media | Mark | Clear | Result | TransferRequest | HangupRequest
# `connected`/`start`/`stop`/`dtmf` from the agent are legal but mean nothing to us: None.
_IGNORED = frozenset({"connected", "start", "stop", "dtmf"})


def parse_agent(text: str | bytes) -> AgentMessage | Fault | None:
    """One WebSocket message from the agent: the message, a Fault, or None for a legal no-op. Never raises."""
    if isinstance(text, bytes):
        return Fault("binary", f"binary frame of {len(text)} bytes; Media Streams is JSON text")
    if len(text) > MAX_MESSAGE_CHARS:
        return Fault("oversized", f"message of {len(text)} characters (limit {MAX_MESSAGE_CHARS})")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return Fault("bad_json", f"not JSON: {str(exc)[:80]}")
    if not isinstance(doc, dict):
        return Fault("bad_json", "not a JSON object")
    event = doc.get("event")
    try:
        return _parse_event(event, doc)
    except (TypeError, AttributeError, KeyError) as exc:
        return Fault("bad_message", f"{event!r}: malformed ({type(exc).__name__})")


def _parse_event(event: object, doc: dict[str, Any]) -> AgentMessage | Fault | None:  # one per event
    if event == "media":
        return _media(doc.get("media"))
    if event == "mark":
        name = (doc.get("mark") or {}).get("name")
        return Mark(name) if isinstance(name, str) and name else Fault("bad_message", "mark without a name")
    if event == "clear":
        return Clear()
    if event == "result":
        result = doc.get("result")
        if not isinstance(result, dict):
            return Fault("bad_message", "result must carry a JSON object")
        disposition = result.get("disposition")
        if disposition is not None and not (isinstance(disposition, str) and _DISPOSITION.match(disposition)):
            return Fault("bad_disposition", f"disposition {str(disposition)[:40]!r} is not a short lower-case word")
        return Result(result)
    if event == "transfer":
        target = (doc.get("transfer") or {}).get("target")
        if not isinstance(target, str) or not _SIP_TARGET.match(target):
            return Fault("bad_message", f"transfer target {str(target)[:60]!r} is not a sip: URI")
        return TransferRequest(target)
    if event == "hangup":
        return HangupRequest()
    if event in _IGNORED:
        return None
    return Fault("unknown_event", f"unknown event {str(event)[:40]!r}")


def _media(body: object) -> Media | Fault:
    if not isinstance(body, dict) or not isinstance(body.get("payload"), str):
        return Fault("bad_audio", "media without a base64 payload")
    payload: str = body["payload"]
    if len(payload) > MAX_AGENT_AUDIO_BYTES * 4 // 3 + 4:
        return Fault("bad_audio", f"media payload over {MAX_AGENT_AUDIO_BYTES} bytes")
    try:
        ulaw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return Fault("bad_audio", "media payload is not base64")
    if not ulaw:
        return Fault("bad_audio", "empty media payload")
    return Media(ulaw)


def agent_media(stream_sid: str, ulaw: bytes) -> str:
    """What an agent sends: one media message (used by the reference agent and the tests)."""
    return json.dumps({"event": "media", "streamSid": stream_sid,
                       "media": {"payload": base64.b64encode(ulaw).decode("ascii")}})


def agent_event(stream_sid: str, event: str, **body: Any) -> str:
    """What an agent sends: mark/clear/result/transfer/hangup."""
    return json.dumps({"event": event, "streamSid": stream_sid, **body})


def parse_ours(text: str) -> dict[str, Any]:
    """Our own messages as the agent reads them (reference agent, tests): the JSON object; ValueError if not."""
    doc = json.loads(text)
    if not isinstance(doc, dict) or "event" not in doc:
        raise ValueError("not a Media Streams message")
    return doc


def media_payload(doc: Mapping[str, Any]) -> bytes:
    """The µ-law bytes of one of our media messages."""
    return base64.b64decode(doc["media"]["payload"])
