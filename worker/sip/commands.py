"""What other threads hand the SIP thread: limits, call requests and commands.

Plain data plus the two helpers that resolve a Future safely: a caller may
cancel a future at any moment, and an InvalidStateError raised on the SIP
thread would take the whole agent down.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

from worker.sip.answer import AnswerScript
from worker.sip.config import CallResult, RegistrationResult


@dataclass(frozen=True)
class AgentLimits:
    max_calls: int
    max_call_starts_per_s: float
    slot_wait_s: float
    poll_ms: int
    log_level: int
    observe_challenges: bool = True


@dataclass(eq=False)
class CallRequest:
    uri: str
    ring_timeout_s: float
    hold_s: float
    start_deadline: float
    future: Future[CallResult] = field(default_factory=Future)
    aborted: bool = False
    # Built on the caller's thread, called on the SIP thread when the call is answered;
    # None: hold the answered call for hold_s, then hang up.
    script_factory: Callable[[], AnswerScript] | None = None


@dataclass(frozen=True)
class PlaceCall:
    request: CallRequest


@dataclass(frozen=True)
class AbortCall:
    request: CallRequest


@dataclass(frozen=True)
class Reregister:
    future: Future[RegistrationResult]


@dataclass(frozen=True)
class Stop:
    grace_s: float


Command = PlaceCall | AbortCall | Reregister | Stop


def fail_future(future: Future[Any], exc: Exception) -> None:
    """Resolve with an error unless the caller already cancelled."""
    try:
        if not future.done():
            future.set_exception(exc)
    except InvalidStateError:
        pass


def resolve_future(future: Future[Any], value: object) -> None:
    """Resolve with a value unless the caller already cancelled."""
    try:
        if not future.done():
            future.set_result(value)
    except InvalidStateError:
        pass
