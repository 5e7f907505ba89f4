"""What the flow engine and its runner say to each other: events in, actions out (pure data).

The runner on the SIP thread turns pjsua2 callbacks into these events and
carries out these actions through its media control; the engine
(:mod:`shared.flow.engine`) maps one to the other. Kept apart so a reader of
either side sees the whole vocabulary on one page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from shared.flow.listen import Heard, Listen


# --------------------------------------------------------------------------------------------- events
@dataclass(frozen=True, slots=True)
class Tick:
    now: float
    played_s: float | None = None  # the current prompt's position, when one plays
    play_finished: bool = False


@dataclass(frozen=True, slots=True)
class Digit:
    digit: str
    now: float


@dataclass(frozen=True, slots=True)
class TransferStatus:
    status: int
    final: bool
    now: float


@dataclass(frozen=True, slots=True)
class RecordingResult:
    path: str | None
    error: str | None
    now: float


@dataclass(frozen=True, slots=True)
class HungUp:
    by: Literal["local", "remote"]
    now: float


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """From a stream step's agent: opened, failed (unreachable), result, transfer, hangup, ended (closed/dropped)."""

    kind: Literal["opened", "failed", "result", "transfer", "hangup", "ended"]
    now: float
    result: Mapping[str, Any] | None = None
    target: str | None = None
    detail: str = ""


Event = Tick | Digit | TransferStatus | RecordingResult | HungUp | Heard | StreamEvent


# --------------------------------------------------------------------------------------------- actions
@dataclass(frozen=True, slots=True)
class Play:
    step: str  # the runner knows which WAV this step's prompt is


@dataclass(frozen=True, slots=True)
class StopPlay:
    pass


@dataclass(frozen=True, slots=True)
class Transfer:
    target: str
    mode: str


@dataclass(frozen=True, slots=True)
class StartRecording:
    step: str
    mode: str
    max_s: float


@dataclass(frozen=True, slots=True)
class StopRecording:
    pass


@dataclass(frozen=True, slots=True)
class OptOut:
    step: str


@dataclass(frozen=True, slots=True)
class Hangup:
    pass


@dataclass(frozen=True, slots=True)
class StartStream:
    step: str  # the runner opens this step's agent stream


@dataclass(frozen=True, slots=True)
class StopStream:
    pass


Action = (Play | StopPlay | Transfer | StartRecording | StopRecording | OptOut | Hangup | Listen | StartStream
          | StopStream)
