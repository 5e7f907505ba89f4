"""The provider seam: what any realtime voice agent looks like to the bridge.

A provider module (``media_streams`` today; a vendor's own realtime API such
as Volcengine Doubao's tomorrow) supplies one :class:`AgentSession` per call.
Every method is a coroutine run on the bridge's asyncio thread; audio crosses
the seam as PCM16 8 kHz mono in 20 ms frames whatever the provider speaks on
the wire (a wideband provider resamples with :func:`shared.media_streams.resample`).

Events from the agent are the Media Streams message types (``Media`` carries
PCM here, already decoded) plus :class:`~shared.media_streams.Fault` for a
message the provider could not use; ``receive`` returns None once the agent
has gone (closed or dropped: :attr:`AgentSession.close_reason` says which).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from shared import media_streams as ms

AgentEvent = ms.Media | ms.Mark | ms.Clear | ms.Result | ms.TransferRequest | ms.HangupRequest | ms.Fault


class AgentUnavailable(Exception):
    """The agent could not be reached or refused the stream; the message never holds the token."""


@dataclass(frozen=True)
class StreamStart:
    """What the agent is told when the stream opens."""

    stream_sid: str
    call_sid: str
    custom: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Endpoint:
    """Where the agent is and how to authenticate: the token is read from ``token_env`` at open, never stored."""

    url: str
    token_env: str | None = None
    open_timeout_s: float = 3.0


class AgentSession(Protocol):
    """One call's conversation with an agent. Coroutines, all run on the bridge's asyncio thread."""

    close_reason: str | None  # "closed" (the agent ended it cleanly) or "dropped: ..." once receive() is None

    async def open(self, start: StreamStart) -> None:
        """Connect and announce the stream; AgentUnavailable if the agent cannot be reached."""

    async def send_audio(self, pcm: bytes) -> None:
        """One 20 ms frame of the callee's audio (PCM16 8 kHz). May wait when the agent reads slowly."""

    async def send_dtmf(self, digit: str) -> None: ...

    async def send_mark(self, name: str) -> None:
        """The agent's audio up to its mark ``name`` has been played to the callee."""

    async def receive(self) -> AgentEvent | None:
        """The next event from the agent; None once it has gone."""

    async def close(self) -> None:
        """Say stop and close; safe to call twice and after a drop."""
