"""Flow steps that listen to the callee: ``amd`` and ``voicemail_drop`` (pure; part of the engine).

In the flow file::

    [steps.detect]
    amd = {}                                  # or any AmdSettings field: { greeting_ms = 2000 }
    branches = { human = "offer", machine = "drop", notsure = "offer" }

    [steps.drop]
    voicemail_drop = { max_wait_s = 20 }      # optional: max_wait_s, greeting_end_ms
    say = "Hello {name}, this is ACME. Please call us back on 139 0000 0000."
    next = "bye"

``amd`` listens (the runner feeds the callee's audio to a
:class:`~shared.amd.AmdDetector`) until the detector decides, then takes the
decision's branch. ``notsure`` without a branch of its own goes where
``human`` goes, and ``human`` without a branch goes to ``next``: a flow must
give a person somewhere to go (parsing refuses an ``amd`` step with neither),
so nobody is hung up on because the detector could not tell. The step is
bounded by the detector's ``total_analysis_ms`` (plus a second for audio
that never arrives): then it is ``notsure``/``timeout``.

``voicemail_drop`` waits for the box's beep to end or its greeting to fall
silent (:mod:`shared.amd_drop`), at most ``max_wait_s``, then plays its
``play``/``say`` message so the whole message lands on the box's recording.
If the ``amd`` step decided on the beep itself, the box is already recording
and the message starts at once.

The engine (:mod:`shared.flow.engine`) calls :func:`enter`, :func:`heard` and
:func:`expired`; this module uses the engine's helpers at call time only, so
the two import each other safely.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from shared.amd import AmdSettings
from shared.amd_drop import DropSettings

KINDS = frozenset({"amd", "voicemail_drop"})
PHASES = frozenset({"listening", "waiting_beep"})
DECISIONS = ("human", "machine", "notsure")
AUDIO_GRACE_S = 1.0  # beyond total_analysis_ms: audio that never reaches the detector still ends the step


@dataclass(frozen=True, slots=True)
class Heard:
    """What the runner's listener heard: an amd decision (human|machine|notsure) or beep|silence.

    ``at_s`` is the time since answer of the audio that settled it (the frame, not the loop turn).
    """

    what: str
    reason: str
    now: float
    at_s: float | None = None


@dataclass(frozen=True, slots=True)
class Listen:
    """Action: start feeding the callee's audio to ``kind`` ("amd" or "beep") for ``step``."""

    step: str
    kind: str


# ------------------------------------------------------------------------------------------- parsing
def parse_amd(value: Any, branches: Mapping[str, str], has_next: bool, at: str) -> dict[str, Any]:
    """The ``amd`` table's overrides of :class:`AmdSettings`; ValueError naming the problem."""
    if value is True:
        value = {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{at}: amd must be a table such as {{}} or {{ greeting_ms = 2000 }}")
    known = {f.name for f in fields(AmdSettings)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ValueError(f"{at}: amd: unknown key {unknown[0]!r}; use {', '.join(sorted(known))}")
    try:
        AmdSettings(**value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{at}: {exc}") from None
    for key in branches:
        if key not in DECISIONS:
            raise ValueError(f"{at}: branch {key!r}: an amd step branches on human, machine or notsure")
    if "human" not in branches and not has_next:
        raise ValueError(f"{at}: give the human branch (or next): a person must never be hung up on")
    return dict(value)


def parse_drop(value: Any, has_prompt: bool, at: str) -> dict[str, Any]:
    """The ``voicemail_drop`` table (:class:`DropSettings`); its message is the step's play or say."""
    if value is True:
        value = {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{at}: voicemail_drop must be a table such as {{ max_wait_s = 20 }} or true")
    try:
        DropSettings.parse(dict(value))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{at}: voicemail_drop: {exc}") from None
    if not has_prompt:
        raise ValueError(f"{at}: voicemail_drop needs its message: play = \"message.wav\" or say = \"...\"")
    return dict(value)


def amd_settings(params: Mapping[str, Any]) -> AmdSettings:
    return AmdSettings(**params)


def drop_settings(params: Mapping[str, Any]) -> DropSettings:
    return DropSettings.parse(dict(params))


def amd_target(branches: Mapping[str, str], next_step: str | None, decision: str) -> str | None:
    """Where a decision leads: its branch; notsure falls back to human's; human to next."""
    if decision in branches:
        return branches[decision]
    if decision == "machine":
        return next_step
    return branches.get("human", next_step)


def ends_call(branches: Mapping[str, str], next_step: str | None) -> bool:
    """Whether some decision of an amd step ends the call (for the loop check)."""
    return any(amd_target(branches, next_step, d) is None for d in DECISIONS)


# ------------------------------------------------------------------------------------------- engine
def enter(flow: Any, state: Any, cur: Any, now: float, acts: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...]]:
    """Start an amd or voicemail_drop step."""
    from shared.flow import signals

    if cur.kind == "amd":
        limit = amd_settings(cur.params).total_analysis_ms / 1000 + AUDIO_GRACE_S
        return replace(state, phase="listening", deadline=now + limit), (*acts, Listen(cur.id, "amd"))
    if state.amd_reason == "beep":  # the detector decided on the beep: the box records already
        return replace(state, phase="playing", heard="beep"), (*acts, signals.Play(cur.id))
    wait = drop_settings(cur.params).max_wait_s
    return replace(state, phase="waiting_beep", deadline=now + wait, heard=None), (*acts, Listen(cur.id, "beep"))


def heard(flow: Any, state: Any, ev: Heard) -> tuple[Any, tuple[Any, ...]]:
    """A decision, a beep or a silence from the listener."""
    from shared.flow import engine, signals

    cur = flow.step(state.step)
    if state.phase == "listening" and cur.kind == "amd" and ev.what in DECISIONS:
        state = replace(state, decision=ev.what, amd_reason=ev.reason)
        decided = ev.at_s if ev.at_s is not None else state.at(ev.now)
        state = engine._log(state, cur, ev.what, ev.now, decision=ev.what, reason=ev.reason, decided_at_s=decided)
        return engine._enter(flow, replace(state, phase="between"), amd_target(cur.branches, cur.next, ev.what),
                             ev.now, ())
    if state.phase == "waiting_beep" and cur.kind == "voicemail_drop" and ev.what in ("beep", "silence"):
        return replace(state, phase="playing", deadline=None, heard=ev.what), (signals.Play(cur.id),)
    return state, ()


def digit(flow: Any, state: Any, ev: Any) -> tuple[Any, tuple[Any, ...]]:
    """A key pressed while amd listens: a machine does not press keys, so HUMAN (dtmf), and the key counts."""
    from shared.flow import engine

    state, acts = heard(flow, state, Heard("human", "dtmf", ev.now))
    if state.phase == "listening":  # not an amd step after all: ignore, as before
        return state, acts
    state, more = engine.step(flow, state, ev)
    return state, (*acts, *more)


def expired(flow: Any, state: Any, cur: Any, now: float) -> tuple[Any, tuple[Any, ...]]:
    """The step's bound passed: amd is notsure (timeout); the voicemail message plays anyway."""
    from shared.flow import signals

    if state.phase == "listening":
        return heard(flow, state, Heard("notsure", "timeout", now))
    return replace(state, phase="playing", deadline=None, heard="timeout"), (signals.Play(cur.id),)
