"""A reference AI agent: a Media Streams WebSocket server that talks, listens, answers keys and reports.

It plays the part a real voice agent (Pipecat, a vendor's realtime model)
plays, so the bridge can be tried and tested without one. Per stream it:

1. checks the bearer token when one is configured (401 otherwise);
2. greets the callee: espeak-ng speech (``greeting``) or a tone
   (``tone_hz``), sent in one burst as an agent's TTS would be, then a
   ``mark`` named "greeting";
3. listens for ``listen_s`` seconds, echoing the callee's audio back when
   ``echo`` is on; a key the callee presses ends that early:
   "1" interested, "2" not interested, "0" asks for a transfer to
   ``transfer_to`` (when set);
4. sends ``{"event": "result", "result": {"disposition": ...}}`` and
   ``hangup``.

Everything it hears is kept in :class:`Heard` (for the tests and the
bench). Fault modes for tests: ``garbage`` (broken JSON and odd-sized audio
before greeting), ``drop_after_s`` (the TCP connection is cut),
``stall_s`` (stops reading: a slow agent) and ``clear_after_s`` (barge-in
on its own greeting).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
import time
import wave
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from shared import media_streams as ms

RATE = 8000


@dataclass
class AgentScript:
    """What the reference agent does on each stream."""

    greeting: str = "Hello, this is the demo agent of sip dialer. Press 1 if you are interested, 2 if not."
    tone_hz: float = 0.0  # > 0: greet with a tone instead of speech
    greeting_s: float = 2.0  # the tone's length
    echo: bool = True
    listen_s: float = 4.0
    disposition: str = "interested"
    transfer_to: str = ""
    token: str | None = None  # the bearer token to require
    garbage: bool = False
    drop_after_s: float = 0.0
    stall_s: float = 0.0
    clear_after_s: float = 0.0
    hang_up: bool = True
    pace: bool = False  # send the tone greeting in real time, 20 ms a message (a streaming model), not a burst


@dataclass
class Heard:
    """What one stream brought: the start message, the callee's audio, keys, marks and arrival times."""

    start: dict[str, Any] = field(default_factory=dict)
    sid: str = ""
    pcm: bytearray = field(default_factory=bytearray)
    media_times: list[float] = field(default_factory=list)
    sequence: list[int] = field(default_factory=list)
    dtmf: list[str] = field(default_factory=list)
    marks: list[tuple[str, float]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    authorized: bool | None = None
    greeting_sent_at: float | None = None
    ended: bool = False


def greeting_pcm(script: AgentScript) -> bytes:
    """The greeting as PCM16 8 kHz: espeak-ng speech, or a tone when asked (or when espeak-ng is missing)."""
    if script.tone_hz <= 0 and shutil.which("espeak-ng"):
        with tempfile.TemporaryDirectory() as tmp:
            wav_path = Path(tmp) / "greeting.wav"
            subprocess.run(["espeak-ng", "-v", "en", "-w", str(wav_path), script.greeting], check=True,
                           capture_output=True, timeout=30)
            with wave.open(str(wav_path), "rb") as wav:
                rate, data = wav.getframerate(), wav.readframes(wav.getnframes())
            return ms.resample(np.frombuffer(data, dtype="<i2"), rate, RATE).tobytes()
    hz = script.tone_hz if script.tone_hz > 0 else 440.0
    seconds = min(script.greeting_s, 1.0) if script.pace else script.greeting_s  # paced: 1 s, cycled
    t = np.arange(int(seconds * RATE)) / RATE
    return (12000 * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()


class DemoAgent:
    """The server. ``streams`` keeps a :class:`Heard` per stream, in order of arrival."""

    def __init__(self, script: AgentScript | None = None) -> None:
        self.script = script or AgentScript()
        self.streams: list[Heard] = []
        self._greeting: bytes | None = None
        self.port = 0

    def _check_auth(self, connection: ServerConnection, request: Request) -> Response | None:
        token = self.script.token
        if token is None:
            return None
        if request.headers.get("Authorization") != f"Bearer {token}":
            return connection.respond(HTTPStatus.UNAUTHORIZED, "bad or missing bearer token\n")
        return None

    async def serve(self, host: str = "127.0.0.1", port: int = 0, ready: asyncio.Event | None = None,
                    stop: asyncio.Event | None = None) -> None:
        """Serve until ``stop`` is set (or cancelled); ``self.port`` holds the bound port once ``ready`` is set."""
        if self._greeting is None:
            self._greeting = await asyncio.to_thread(greeting_pcm, self.script)
        async with serve(self._handle, host, port, process_request=self._check_auth, max_queue=64,
                         compression=None, ping_interval=None, close_timeout=1.0) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            if ready is not None:
                ready.set()
            await (stop or asyncio.Event()).wait()
            server.close()  # close every stream (close_timeout 1 s), then leave
            await server.wait_closed()

    async def _handle(self, ws: ServerConnection) -> None:
        heard = Heard(authorized=True)
        self.streams.append(heard)
        started = asyncio.Event()
        decided: asyncio.Queue[str] = asyncio.Queue()
        reader = asyncio.create_task(self._read(ws, heard, started, decided))
        talk: asyncio.Task[None] | None = None
        try:
            await asyncio.wait_for(started.wait(), 5.0)
            talk = asyncio.create_task(self._talk(ws, heard.sid, heard, decided))
            await asyncio.wait({reader, talk}, return_when=asyncio.FIRST_COMPLETED)
            if talk.done():  # said its piece: listen on until the caller says stop
                await reader
        except (ConnectionClosed, TimeoutError):
            pass
        finally:
            for task in (reader, talk):  # the call ended (stop / closed) while we talked: stop talking
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                        await task
            heard.ended = True

    async def _read(self, ws: ServerConnection, heard: Heard, started: asyncio.Event,
                    decided: asyncio.Queue[str]) -> None:
        script = self.script
        async for text in ws:
            doc = ms.parse_ours(str(text))
            heard.events.append(doc["event"])
            if doc["event"] == "start":
                heard.start, heard.sid = doc["start"], doc["streamSid"]
                started.set()
            elif doc["event"] == "media":
                pcm = ms.ulaw_decode(ms.media_payload(doc))
                heard.pcm.extend(pcm)
                heard.media_times.append(time.monotonic())
                heard.sequence.append(int(doc["sequenceNumber"]))
                if script.echo and heard.greeting_sent_at is not None:
                    await ws.send(ms.agent_media(heard.sid, ms.ulaw_encode(pcm)))
            elif doc["event"] == "dtmf":
                heard.dtmf.append(doc["dtmf"]["digit"])
                await decided.put(doc["dtmf"]["digit"])
            elif doc["event"] == "mark":
                heard.marks.append((doc["mark"]["name"], time.monotonic()))
            elif doc["event"] == "stop":
                return
            if script.stall_s:
                await asyncio.sleep(script.stall_s)  # a slow agent: TCP backs up toward the bridge

    @staticmethod
    async def _paced(ws: ServerConnection, sid: str, pcm: bytes, seconds: float) -> None:
        """``seconds`` of ``pcm`` (cycled), one 20 ms message per 20 ms of wall clock."""
        frames = [ms.ulaw_encode(pcm[i:i + 320]) for i in range(0, len(pcm) - 319, 320)] or [bytes(160)]
        start = time.monotonic()
        for n in range(int(seconds * 50)):
            await ws.send(ms.agent_media(sid, frames[n % len(frames)]))
            await asyncio.sleep(max(0.0, start + (n + 1) * 0.02 - time.monotonic()))

    async def _talk(self, ws: ServerConnection, sid: str, heard: Heard, decided: asyncio.Queue[str]) -> None:
        script = self.script
        if script.garbage:
            for junk in ("{not json", '{"event": "dance"}', '{"event": "media", "media": {"payload": "@@"}}'):
                await ws.send(junk)
            await ws.send(ms.agent_media(sid, b"\xff" * 37))  # odd size: re-framed, counted
        greeting = self._greeting or b""
        if script.pace:
            await self._paced(ws, sid, greeting, script.greeting_s)
        else:
            for start in range(0, len(greeting), 3200):  # 200 ms per message, all at once like a TTS burst
                await ws.send(ms.agent_media(sid, ms.ulaw_encode(greeting[start:start + 3200])))
        await ws.send(ms.agent_event(sid, "mark", mark={"name": "greeting"}))
        heard.greeting_sent_at = time.monotonic()
        if script.clear_after_s:
            await asyncio.sleep(script.clear_after_s)
            await ws.send(ms.agent_event(sid, "clear"))
        if script.drop_after_s:
            await asyncio.sleep(script.drop_after_s)
            ws.transport.abort()  # no close frame: the bridge sees a dropped connection
            return
        disposition = script.disposition
        try:
            digit = await asyncio.wait_for(decided.get(), script.listen_s)
        except TimeoutError:
            digit = ""
        if digit == "0" and script.transfer_to:
            await ws.send(ms.agent_event(sid, "result", result={"disposition": "transfer", "digit": digit}))
            await ws.send(ms.agent_event(sid, "transfer", transfer={"target": script.transfer_to}))
            return
        if digit in ("1", "2"):
            disposition = "interested" if digit == "1" else "not_interested"
        await ws.send(ms.agent_event(sid, "result", result={"disposition": disposition, "digit": digit,
                                                            "heard_s": round(len(heard.pcm) / 2 / RATE, 2)}))
        if script.hang_up:
            await ws.send(ms.agent_event(sid, "hangup"))
