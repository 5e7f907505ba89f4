"""The flow engine's state and its log of steps taken (pure data, frozen).

A call's whole flow history is a :class:`State`; its :class:`Entry` values
become the CDR's flow steps and the ``"flow"`` list of ``dialer call --json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Phase = Literal["between", "playing", "gathering", "pausing", "transfer", "bridged", "recording", "stopping", "done",
                "listening", "waiting_beep", "streaming"]
EndedBy = Literal["flow", "remote", "max_duration", "transferred"]


# --------------------------------------------------------------------------------------------- state
@dataclass(frozen=True, slots=True)
class Entry:
    """One line of the flow log."""

    step: str
    action: str
    result: str
    at_s: float
    digits: str | None = None
    status: int | None = None
    played_s: float | None = None
    path: str | None = None
    target: str | None = None
    decision: str | None = None  # amd: human|machine|notsure, with its reason and time since answer
    reason: str | None = None
    decided_at_s: float | None = None
    heard: str | None = None  # voicemail_drop: what started the message (beep|silence|timeout)
    disposition: str | None = None  # stream: the agent's result's disposition
    agent_result: Mapping[str, Any] | None = None  # stream: the object the agent sent as its result
    detail: str | None = None  # stream: why the agent was unavailable or went

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {"step": self.step, "action": self.action, "result": self.result,
                                   "at_s": round(self.at_s, 3)}
        for key in ("digits", "status", "played_s", "path", "target", "decision", "reason", "decided_at_s", "heard",
                    "disposition", "agent_result", "detail"):
            value = getattr(self, key)
            if value is not None:
                data[key] = round(value, 3) if isinstance(value, float) else value
        return data


@dataclass(frozen=True, slots=True)
class State:
    answered_at: float
    step: str
    phase: Phase
    deadline: float | None = None  # the current phase's timer, when it has one
    digits: str = ""
    tries: int = 0  # gather prompts repeated so far
    played_s: float = 0.0
    entries: tuple[Entry, ...] = ()
    recording_step: str | None = None  # a "call" recording still running
    typeahead: str = ""  # keys pressed during a prompt before a gather: the gather takes them first
    ended_by: EndedBy | None = None
    ended_at: float | None = None
    decision: str | None = None  # the last amd decision, and its reason (shared.flow.listen)
    amd_reason: str | None = None
    heard: str | None = None  # what started the current voicemail_drop message
    agent_result: Mapping[str, Any] | None = None  # the stream step's latest result from its agent
    agent_target: str | None = None  # where the agent asked us to transfer the call

    @property
    def done(self) -> bool:
        """The flow is over and nothing is outstanding (a running recording gets its grace)."""
        return self.phase == "done" and self.recording_step is None

    def at(self, now: float) -> float:
        return max(0.0, now - self.answered_at)
