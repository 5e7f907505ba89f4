"""A call flow as data: what the file says, parsed into small frozen steps.

The file format (TOML, YAML or JSON; the issue's example is accepted as
written) is a table of named steps and a ``start``::

    start = "offer"
    max_duration_s = 300          # optional, the whole flow's limit (default 300)
    voice = "en"                  # optional, default voice of `say` steps

    [steps.offer]
    play = "offer.wav"            # relative to the flow file
    next = "menu"

    [steps.menu]
    gather = { num_digits = 1, timeout_s = 6 }
    say = "Press 1 to speak with an advisor, 9 to stop receiving calls."
    branches = { "1" = "agent", "9" = "optout", none = "bye" }

One action per step: ``play``, ``say``, ``gather`` (whose prompt is an optional
``play`` or ``say`` beside it), ``transfer`` (with ``mode`` refer|bridge),
``record`` ("call" or "message", with ``max_s``), ``opt_out``, ``pause``
(seconds), ``hangup``, ``stream`` (an AI agent over a WebSocket,
``stream = { url = "ws://127.0.0.1:8765/agent", token_env = "AGENT_TOKEN" }``,
whose ``on_failure`` runs when the agent cannot be reached or drops; its
``mode`` is how a transfer the agent asks for is made), or the listening
steps ``amd`` and ``voicemail_drop`` (:mod:`shared.flow.listen`). Every step
may name ``next``; gather, amd and transfer steps also ``branches`` /
``on_failure`` (stream steps ``on_failure``). A step with nowhere to go next ends
the call.

Parsing is pure and stops at the FIRST problem with a :class:`FlowError`
naming the step and the key, so an operator fixes one thing at a time and no
half-valid flow is ever stored. Graph rules (branch targets, loops with no
way out, transfer URIs) live in :mod:`shared.flow.validate`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from shared.errors import ConfigError
from shared.flow import listen

StepKind = Literal["play", "say", "gather", "transfer", "record", "opt_out", "pause", "hangup", "amd",
                   "voicemail_drop", "stream"]
TransferMode = Literal["refer", "bridge"]
RecordMode = Literal["call", "message"]

DEFAULT_MAX_DURATION_S = 300.0
MAX_DURATION_LIMIT_S = 4 * 3600.0
# espeak-ng voice names, and the spellings accepted for them.
VOICES: Mapping[str, str] = {"en": "en", "en-us": "en-us", "en-gb": "en-gb", "cmn": "cmn", "zh": "cmn",
                             "mandarin": "cmn"}
_ACTIONS: tuple[StepKind, ...] = ("gather", "transfer", "record", "opt_out", "pause", "hangup", "amd", "voicemail_drop",
                                  "stream", "play", "say")
_PROMPTED: tuple[StepKind, ...] = ("gather", "voicemail_drop")  # steps whose play/say is their prompt or message
_COMMON_KEYS = frozenset({"next", "branches", "on_failure", "voice", "mode", "max_s", *_ACTIONS})
_FLOW_KEYS = frozenset({"start", "steps", "max_duration_s", "voice"})
_GATHER_KEYS = frozenset({"num_digits", "timeout_s", "finish_on_key", "repeat"})
_STREAM_KEYS = frozenset({"url", "token_env"})
_WS_URL = re.compile(r"^wss?://[A-Za-z0-9.\-\[\]:]+(/[^\s]*)?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_DTMF = frozenset("0123456789*#ABCD")


class FlowError(ConfigError):
    """A flow that cannot run; the message names the step and the problem."""


@dataclass(frozen=True, slots=True)
class Gather:
    num_digits: int = 1
    timeout_s: float = 5.0
    finish_on_key: str = ""
    repeat: int = 1  # times the prompt is repeated when nothing (or nothing matching) is pressed


@dataclass(frozen=True, slots=True)
class Step:
    """One step. ``prompt`` is the play path / say text; ``prompt_kind`` says which (or None)."""

    id: str
    kind: StepKind
    next: str | None = None
    branches: Mapping[str, str] = field(default_factory=dict)
    on_failure: str | None = None
    prompt_kind: Literal["play", "say"] | None = None
    prompt: str = ""
    voice: str = "en"
    wav_sha256: str | None = None  # filled when the flow's WAVs are loaded
    gather: Gather | None = None
    target: str = ""
    mode: str = ""
    max_s: float = 0.0
    pause_s: float = 0.0
    params: Mapping[str, Any] = field(default_factory=dict)  # amd / voicemail_drop settings (shared.flow.listen)
    url: str = ""  # stream: the agent's WebSocket
    token_env: str = ""  # stream: the environment variable holding its bearer token (never the token)

    def exits(self) -> tuple[str, ...]:
        """Every step this one may lead to."""
        return tuple(t for t in (self.next, *self.branches.values(), self.on_failure) if t is not None)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind}
        for key in ("next", "on_failure", "prompt_kind", "wav_sha256"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        if self.branches:
            data["branches"] = dict(self.branches)
        if self.prompt_kind is not None:
            data["prompt"] = self.prompt
            data["voice"] = self.voice
        if self.gather is not None:
            g = self.gather
            data["gather"] = {"num_digits": g.num_digits, "timeout_s": g.timeout_s,
                              "finish_on_key": g.finish_on_key, "repeat": g.repeat}
        if self.kind == "transfer":
            data.update(target=self.target, mode=self.mode)
        if self.kind == "record":
            data.update(mode=self.mode, max_s=self.max_s)
        if self.kind == "pause":
            data["pause_s"] = self.pause_s
        if self.kind in ("amd", "voicemail_drop"):
            data["params"] = dict(self.params)
        if self.kind == "stream":
            data.update(url=self.url, token_env=self.token_env, mode=self.mode)
        return data

    @classmethod
    def from_json(cls, step_id: str, data: Mapping[str, Any]) -> Step:
        g = data.get("gather")
        return cls(
            id=step_id, kind=data["kind"], next=data.get("next"), branches=dict(data.get("branches", {})),
            on_failure=data.get("on_failure"), prompt_kind=data.get("prompt_kind"), prompt=data.get("prompt", ""),
            voice=data.get("voice", "en"), wav_sha256=data.get("wav_sha256"),
            gather=Gather(**g) if g is not None else None, target=data.get("target", ""),
            mode=data.get("mode", ""), max_s=float(data.get("max_s", 0.0)), pause_s=float(data.get("pause_s", 0.0)),
            params=dict(data.get("params", {})),
            url=data.get("url", ""), token_env=data.get("token_env", ""),
        )


@dataclass(frozen=True, slots=True)
class Flow:
    start: str
    steps: Mapping[str, Step]
    max_duration_s: float = DEFAULT_MAX_DURATION_S

    def step(self, step_id: str) -> Step:
        return self.steps[step_id]

    def to_json(self) -> dict[str, Any]:
        """The stored form (``campaigns.flow``); :meth:`from_json` reads it back."""
        return {"start": self.start, "max_duration_s": self.max_duration_s,
                "steps": {sid: s.to_json() for sid, s in self.steps.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Flow:
        return cls(start=data["start"], max_duration_s=float(data["max_duration_s"]),
                   steps={sid: Step.from_json(sid, s) for sid, s in data["steps"].items()})

    @classmethod
    def hold(cls, hold_s: float) -> Flow:
        """Today's answer-hold-BYE as a flow: pause, then hang up."""
        steps = {"hold": Step("hold", "pause", next="bye", pause_s=hold_s), "bye": Step("bye", "hangup")}
        return cls(start="hold", steps=steps, max_duration_s=max(hold_s + 5.0, 10.0))


def parse_flow(doc: Mapping[str, Any], *, where: str = "flow") -> Flow:
    """The flow a parsed document describes, or FlowError naming the first problem."""
    if not isinstance(doc, Mapping):
        raise FlowError(f"{where}: expected a table with `start` and `[steps.NAME]` tables")
    unknown = sorted(set(doc) - _FLOW_KEYS)
    if unknown:
        raise FlowError(f"{where}: unknown key {unknown[0]!r}; the top level holds {', '.join(sorted(_FLOW_KEYS))}")
    steps_doc = doc.get("steps")
    if not isinstance(steps_doc, Mapping) or not steps_doc:
        raise FlowError(f"{where}: no steps; add at least one [steps.NAME] table")
    voice = _voice(doc.get("voice", "en"), f"{where}: voice")
    steps = {str(sid): _parse_step(str(sid), body, voice, where) for sid, body in steps_doc.items()}
    start = doc.get("start")
    if start is None:
        raise FlowError(f"{where}: no `start`; name the first step, e.g. start = {next(iter(steps))!r}")
    if start not in steps:
        raise FlowError(f"{where}: start {start!r} names no step; steps are {', '.join(steps)}")
    max_s = _number(doc.get("max_duration_s", DEFAULT_MAX_DURATION_S), f"{where}: max_duration_s",
                    1.0, MAX_DURATION_LIMIT_S)
    return Flow(start=str(start), steps=steps, max_duration_s=max_s)


def _parse_step(sid: str, body: Any, default_voice: str, where: str) -> Step:  # noqa: C901  # one flat list of keys
    at = f"{where}: step {sid!r}"
    if not isinstance(body, Mapping):
        raise FlowError(f"{at}: expected a table of keys such as play = \"file.wav\"")
    unknown = sorted(set(body) - _COMMON_KEYS)
    if unknown:
        raise FlowError(f"{at}: unknown key {unknown[0]!r}; a step is one of {', '.join(_ACTIONS)} "
                        "with next/branches/on_failure")
    actions = [a for a in _ACTIONS if a in body]
    kind: StepKind
    prompted = next((a for a in _PROMPTED if a in actions), None)
    if prompted is not None:
        kind = prompted
        extra = [a for a in actions if a not in (prompted, "play", "say")]
    elif actions:
        kind, extra = actions[0], actions[1:]
    else:
        raise FlowError(f"{at}: no action; give one of {', '.join(_ACTIONS)}")
    if extra or ("play" in body and "say" in body):
        both = [a for a in actions if a != kind][:2] if not extra else [kind, extra[0]]
        raise FlowError(f"{at}: has both {both[0]!r} and {both[1]!r}; give one action per step")
    fields: dict[str, Any] = {"id": sid, "kind": kind}
    fields["next"] = _step_ref(body.get("next"), f"{at}: next")
    fields["on_failure"] = _step_ref(body.get("on_failure"), f"{at}: on_failure")
    branches = body.get("branches", {})
    if not isinstance(branches, Mapping):
        raise FlowError(f"{at}: branches must be a table such as {{ \"1\" = \"agent\", none = \"bye\" }}")
    if branches and kind not in ("gather", "amd"):
        raise FlowError(f"{at}: branches belong to a gather or amd step; use next here")
    fields["branches"] = {str(k): str(_step_ref(v, f"{at}: branch {k!r}")) for k, v in branches.items()}
    for key in fields["branches"]:
        if kind == "gather" and key != "none" and not (key and set(key) <= _DTMF):
            raise FlowError(f"{at}: branch {key!r} is not keypad digits (0-9, *, #) or `none`")
    if body.get("on_failure") is not None and kind not in ("transfer", "stream"):
        raise FlowError(f"{at}: on_failure belongs to a transfer or stream step")
    if "mode" in body and kind not in ("transfer", "record", "stream"):
        raise FlowError(f"{at}: mode belongs to a transfer, record or stream step")
    if "max_s" in body and kind != "record":
        raise FlowError(f"{at}: max_s belongs to a record step")
    if "voice" in body and "say" not in body:
        raise FlowError(f"{at}: voice belongs to a say step")
    for prompt in ("play", "say"):
        if prompt in body:
            text = body[prompt]
            if not isinstance(text, str) or not text.strip():
                raise FlowError(f"{at}: {prompt} needs a {'WAV path' if prompt == 'play' else 'text'}")
            fields.update(prompt_kind=prompt, prompt=text.strip())
    if "say" in body:
        fields["voice"] = _voice(body.get("voice", default_voice), f"{at}: voice")
    _action_fields(kind, body, at, fields)
    return Step(**fields)


def _action_fields(kind: StepKind, body: Mapping[str, Any], at: str, fields: dict[str, Any]) -> None:
    value = body.get(kind)
    if kind == "gather":
        fields["gather"] = _gather(value, at)
    elif kind == "transfer":
        if not isinstance(value, str):
            raise FlowError(f"{at}: transfer needs a SIP URI such as \"sip:advisors@pbx.example:5060\"")
        mode = body.get("mode", "refer")
        if mode not in ("refer", "bridge"):
            raise FlowError(f"{at}: mode {mode!r}: a transfer is \"refer\" or \"bridge\"")
        fields.update(target=value.strip(), mode=mode)
    elif kind == "record":
        mode = "call" if value is True else value
        if mode not in ("call", "message"):
            raise FlowError(f"{at}: record is \"call\" (both directions) or \"message\" (the callee's message)")
        fields.update(mode=mode, max_s=_number(body.get("max_s", 60.0), f"{at}: max_s", 1.0, 3600.0))
    elif kind == "stream":
        fields.update(_stream(value, body.get("mode", "refer"), at))
    elif kind == "pause":
        fields["pause_s"] = _number(value, f"{at}: pause (seconds)", 0.0, 3600.0)
    elif kind in ("amd", "voicemail_drop"):
        try:
            fields["params"] = (listen.parse_amd(value, fields["branches"], fields["next"] is not None, at)
                                if kind == "amd" else listen.parse_drop(value, "prompt" in fields, at))
        except ValueError as exc:
            raise FlowError(str(exc)) from None
    elif kind in ("opt_out", "hangup") and value is not True:
        raise FlowError(f"{at}: write {kind} = true")


def _gather(value: Any, at: str) -> Gather:
    if value is True:
        value = {}
    if not isinstance(value, Mapping):
        raise FlowError(f"{at}: gather must be a table such as {{ num_digits = 1, timeout_s = 6 }}")
    unknown = sorted(set(value) - _GATHER_KEYS)
    if unknown:
        raise FlowError(f"{at}: gather: unknown key {unknown[0]!r}; use {', '.join(sorted(_GATHER_KEYS))}")
    num = value.get("num_digits", 1)
    if not isinstance(num, int) or isinstance(num, bool) or not 1 <= num <= 32:
        raise FlowError(f"{at}: gather: num_digits {num!r} must be a whole number 1-32")
    finish = value.get("finish_on_key", "")
    if not isinstance(finish, str) or len(finish) > 1 or (finish and finish not in _DTMF):
        raise FlowError(f"{at}: gather: finish_on_key {finish!r} must be one key such as \"#\"")
    repeat = value.get("repeat", 1)
    if not isinstance(repeat, int) or isinstance(repeat, bool) or not 0 <= repeat <= 5:
        raise FlowError(f"{at}: gather: repeat {repeat!r} must be 0-5")
    timeout = _number(value.get("timeout_s", 5.0), f"{at}: gather: timeout_s", 0.5, 120.0)
    return Gather(num_digits=num, timeout_s=timeout, finish_on_key=finish, repeat=repeat)


def _stream(value: Any, mode: Any, at: str) -> dict[str, str]:
    """``stream = { url = "ws://...", token_env = "NAME" }``: the URL checked, the token's variable named."""
    if isinstance(value, str):
        value = {"url": value}
    if not isinstance(value, Mapping):
        raise FlowError(f"{at}: stream must be a table such as {{ url = \"ws://127.0.0.1:8765/agent\", "
                        "token_env = \"AGENT_TOKEN\" }")
    unknown = sorted(set(value) - _STREAM_KEYS)
    if unknown:
        raise FlowError(f"{at}: stream: unknown key {unknown[0]!r}; use url and token_env (the variable's name, "
                        "never the token itself)")
    url = value.get("url")
    if not isinstance(url, str) or not _WS_URL.match(url.strip()):
        raise FlowError(f"{at}: stream: url {url!r} must be a ws:// or wss:// URL")
    token_env = value.get("token_env", "")
    if not isinstance(token_env, str) or (token_env and not _ENV_NAME.match(token_env)):
        raise FlowError(f"{at}: stream: token_env must name an environment variable such as AGENT_TOKEN")
    if mode not in ("refer", "bridge"):
        raise FlowError(f"{at}: mode {mode!r}: the agent's transfers are \"refer\" or \"bridge\"")
    return {"url": url.strip(), "token_env": token_env, "mode": mode}


def _step_ref(value: Any, at: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise FlowError(f"{at}: must name a step")
    return value


def _voice(value: Any, at: str) -> str:
    voice = VOICES.get(str(value).lower())
    if voice is None:
        raise FlowError(f"{at} {value!r} is unknown; use one of {', '.join(VOICES)}")
    return voice


def _number(value: Any, at: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise FlowError(f"{at} {value!r} must be a number of seconds {low:g}-{high:g}")
    return float(value)
