"""The Media Streams provider: a Twilio-compatible agent over a WebSocket (``websockets``' asyncio client).

Authentication is a bearer token read from the environment variable the
flow names (``token_env``) at the moment the stream opens: it goes into the
``Authorization`` header and nowhere else. ``websockets`` dumps request
headers when its logger is at DEBUG, so this module hands it a logger pinned
at INFO; errors are reported by exception type and URL, never by header.

Backpressure: a slow agent makes ``send_audio`` wait for the socket to drain
(``write_limit``); the bridge's bounded outbound queue then drops frames and
counts them. Incoming messages are read one at a time (``max_queue``), so an
agent that floods us is slowed by TCP, not buffered without bound.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidHandshake, InvalidURI

from shared import media_streams as ms
from worker.agent.provider import AgentEvent, AgentUnavailable, Endpoint, StreamStart

_WIRE_LOG = logging.getLogger("worker.agent.wire")
_WIRE_LOG.setLevel(logging.INFO)  # never DEBUG: websockets would log the Authorization header


def bearer_headers(endpoint: Endpoint) -> dict[str, str]:
    """The auth header for ``endpoint``; AgentUnavailable (naming the variable, not its value) when unset."""
    if not endpoint.token_env:
        return {}
    token = os.environ.get(endpoint.token_env, "")
    if not token:
        raise AgentUnavailable(f"token_env {endpoint.token_env}: the environment variable is unset or empty")
    return {"Authorization": f"Bearer {token}"}


class MediaStreamsSession:
    """One call's stream to a Media Streams agent. Every coroutine runs on the bridge's asyncio thread."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.close_reason: str | None = None
        self._ws: ClientConnection | None = None
        self._enc: ms.Encoder | None = None

    async def open(self, start: StreamStart) -> None:
        headers = bearer_headers(self.endpoint)
        try:
            ws = await asyncio.wait_for(
                connect(self.endpoint.url, additional_headers=headers, open_timeout=self.endpoint.open_timeout_s,
                        max_size=ms.MAX_MESSAGE_CHARS * 2, max_queue=4, write_limit=8192, proxy=None,
                        compression=None, logger=_WIRE_LOG, ping_interval=None),
                self.endpoint.open_timeout_s + 0.5)
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            url = safe_url(self.endpoint.url)
            why = _safe(exc).replace(self.endpoint.url, url)
            raise AgentUnavailable(f"{url}: {type(exc).__name__}: {why}") from None
        self._ws = ws
        self._enc = ms.Encoder(ms.StreamIds(start.stream_sid, start.call_sid, custom=start.custom))
        try:
            await ws.send(self._enc.connected())
            await ws.send(self._enc.start())
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else 1006
            raise AgentUnavailable(f"{safe_url(self.endpoint.url)}: closed during start (code {code})") from None

    async def send_audio(self, pcm: bytes) -> None:
        await self._send(lambda enc: enc.media(ms.ulaw_encode(pcm)))

    async def send_dtmf(self, digit: str) -> None:
        await self._send(lambda enc: enc.dtmf(digit))

    async def send_mark(self, name: str) -> None:
        await self._send(lambda enc: enc.mark(name))

    async def _send(self, build: Any) -> None:
        if self._ws is None or self._enc is None or self.close_reason is not None:
            return
        try:
            await self._ws.send(build(self._enc))
        except ConnectionClosed as exc:
            self._closed(exc)

    async def receive(self) -> AgentEvent | None:
        ws = self._ws
        if ws is None:
            return None
        while True:
            try:
                text = await ws.recv()
            except ConnectionClosed as exc:
                self._closed(exc)
                return None
            msg = ms.parse_agent(text)
            if msg is None:
                continue
            if isinstance(msg, ms.Media):
                return ms.Media(ms.ulaw_decode(msg.ulaw))  # PCM across the seam
            return msg

    async def close(self) -> None:
        ws = self._ws
        if ws is None:
            return
        if self.close_reason is None and self._enc is not None:
            try:
                await asyncio.wait_for(ws.send(self._enc.stop()), 1.0)
            except (ConnectionClosed, TimeoutError):
                pass
        try:
            await asyncio.wait_for(ws.close(), 2.0)
        except TimeoutError:
            ws.transport.abort()
        if self.close_reason is None:
            self.close_reason = "closed"

    def _closed(self, exc: ConnectionClosed) -> None:
        if self.close_reason is None:
            code = exc.rcvd.code if exc.rcvd is not None else 1006
            self.close_reason = "closed" if isinstance(exc, ConnectionClosedOK) else f"dropped: close code {code}"


def safe_url(url: str) -> str:
    """The URL for messages and logs: without user info or a query string, where secrets could hide."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _safe(exc: BaseException) -> str:
    """An exception's text without anything that looks like our Authorization header."""
    text = str(exc)[:160]
    return "(details withheld)" if "Bearer" in text or "Authorization" in text else text
