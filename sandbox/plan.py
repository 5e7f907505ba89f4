"""The sandbox PBX number plan: who may register, and what each number does.

The plan is a small TOML file (the shipped one is ``sandbox/plan.toml``, whose
header comments document the format) so that a newcomer can make a number busy
or ring out by editing one line instead of code. Parsing is pure: ``parse_plan``
turns an already-decoded TOML mapping into a frozen ``Plan`` and rejects
anything it does not understand with a ``ConfigError`` that names the field
(``rules[2].action``), because a typo that silently falls back to a default
would make the sandbox lie about what a carrier does.

Passwords are kept out of ``repr`` and out of every error message.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

from shared.errors import ConfigError

DEFAULT_HANGUP_AFTER_S = 3.0
# A carrier's no-answer timer: an INVITE still ringing this long is ended with 480 by the network.
DEFAULT_NO_ANSWER_AFTER_S = 120.0
SHIPPED_PLAN = "plan.toml"


class ReferAnswer(StrEnum):
    """How an answered call's callee takes a REFER (blind transfer) from the caller."""

    ACCEPT = "accept"  # 202, then a NOTIFY whose sipfrag says SIP/2.0 200 OK
    REFUSE = "refuse"  # 403 Forbidden, like a PBX that does not allow transfers


_DIGITS = frozenset("0123456789*#")


class Action(StrEnum):
    """What the PBX does with an authenticated INVITE for a number."""

    ANSWER = "answer"
    BUSY = "busy"
    RING = "ring"
    UNAVAILABLE_ONCE = "unavailable_once"
    REJECT = "reject"
    NOT_FOUND = "not_found"


@dataclass(frozen=True)
class User:
    """A SIP account the registrar and the INVITE challenge accept."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Treatment:
    """The action for a number and its timings (``answer_after_s`` is ring time before 200)."""

    action: Action
    hangup_after_s: float = DEFAULT_HANGUP_AFTER_S
    answer_after_s: float = 0.0
    press: str = ""  # DTMF keys the callee presses (RFC 2833) press_after_s after the prompt starts
    press_after_s: float = 1.0
    refer: ReferAnswer | None = None  # None: REFER is not supported (405)


@dataclass(frozen=True)
class Rule:
    """``match`` is an exact number or a glob (``+86139000011*``); first matching rule wins."""

    match: str
    treatment: Treatment


@dataclass(frozen=True)
class Plan:
    """Everything the sandbox PBX needs to know, validated."""

    users: tuple[User, ...]
    rules: tuple[Rule, ...] = ()
    default: Treatment = Treatment(Action.ANSWER)
    realm: str = "sandbox"
    require_plus_prefix: bool = True
    challenge_invite: bool = True
    qop_auth: bool = True
    max_expires_s: int = 300
    no_answer_after_s: float = DEFAULT_NO_ANSWER_AFTER_S

    def password_for(self, username: str) -> str | None:
        """The password of ``username``, or None when there is no such user."""
        for user in self.users:
            if user.username == username:
                return user.password
        return None


_TOP_KEYS = frozenset({
    "realm", "require_plus_prefix", "challenge_invite", "qop_auth", "max_expires_s", "no_answer_after_s",
    "users", "rules", "default",
})
_TREATMENT_KEYS = frozenset({"action", "hangup_after_s", "answer_after_s", "press", "press_after_s", "refer"})


def load_plan(path: Path | None = None) -> Plan:
    """Read and validate a plan file; None means the plan shipped in this package."""
    if path is None:
        text = resources.files("sandbox").joinpath(SHIPPED_PLAN).read_text(encoding="utf-8")
        source = f"sandbox/{SHIPPED_PLAN}"
    else:
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read plan file ({exc.strerror}); check --plan") from None
    return parse_plan_text(text, source)


def parse_plan_text(text: str, source: str = "plan") -> Plan:
    """Decode TOML text and validate it; TOML syntax errors name the line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    return parse_plan(data, source)


def parse_plan(data: Mapping[str, Any], source: str = "plan") -> Plan:
    """Validate a decoded TOML mapping into a Plan; errors name the offending field."""
    _reject_unknown(data, _TOP_KEYS, "", source)
    users = _users(data.get("users"), source)
    rules = tuple(_rule(raw, f"rules[{i}]", source) for i, raw in enumerate(_list(data, "rules", source)))
    default_raw = data.get("default", {"action": Action.ANSWER.value})
    if not isinstance(default_raw, Mapping):
        raise ConfigError(f"{source}: default: must be a table like {{ action = \"answer\" }}")
    return Plan(
        users=users,
        rules=rules,
        default=_treatment(default_raw, "default", source),
        realm=_string(data, "realm", "sandbox", source),
        require_plus_prefix=_bool(data, "require_plus_prefix", True, source),
        challenge_invite=_bool(data, "challenge_invite", True, source),
        qop_auth=_bool(data, "qop_auth", True, source),
        max_expires_s=_positive_int(data, "max_expires_s", 300, source),
        no_answer_after_s=_seconds(data, "no_answer_after_s", DEFAULT_NO_ANSWER_AFTER_S, "", source,
                                   allow_zero=False),
    )


def _users(raw: Any, source: str) -> tuple[User, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{source}: users: must list at least one {{ username = ..., password = ... }}")
    users: list[User] = []
    for i, item in enumerate(raw):
        where = f"users[{i}]"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{source}: {where}: must be a table with username and password")
        _reject_unknown(item, frozenset({"username", "password"}), where, source)
        username = item.get("username")
        if not isinstance(username, str) or not username or any(c in username for c in ' "@:;'):
            raise ConfigError(f"{source}: {where}.username: must be a non-empty SIP user name")
        password = item.get("password")
        if not isinstance(password, str) or not password:
            # Never echo the value: it is a password.
            raise ConfigError(f"{source}: {where}.password: must be a non-empty string")
        if any(u.username == username for u in users):
            raise ConfigError(f"{source}: {where}.username: {username!r} is listed twice")
        users.append(User(username, password))
    return tuple(users)


def _rule(raw: Any, where: str, source: str) -> Rule:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: {where}: must be a table with match and action")
    _reject_unknown(raw, _TREATMENT_KEYS | {"match"}, where, source)
    match = raw.get("match")
    if not isinstance(match, str) or not match.strip():
        raise ConfigError(f"{source}: {where}.match: must be a number or a glob like \"+86139000011*\"")
    return Rule(match.strip(), _treatment(raw, where, source))


def _treatment(raw: Mapping[str, Any], where: str, source: str) -> Treatment:
    if where == "default":
        _reject_unknown(raw, _TREATMENT_KEYS, where, source)
    action_raw = raw.get("action")
    if not isinstance(action_raw, str) or action_raw not in Action.__members__.values():
        choices = ", ".join(a.value for a in Action)
        raise ConfigError(f"{source}: {where}.action: {action_raw!r} is not one of {choices}")
    action = Action(action_raw)
    hangup = _seconds(raw, "hangup_after_s", DEFAULT_HANGUP_AFTER_S, where, source, allow_zero=False)
    answer_after = _seconds(raw, "answer_after_s", 0.0, where, source, allow_zero=True)
    press = raw.get("press", "")
    if not isinstance(press, str) or len(press) > 32 or not set(press) <= _DIGITS:
        raise ConfigError(f"{source}: {_field(where, 'press')}: must be DTMF keys like \"1\" (0-9, *, #)")
    press_after = _seconds(raw, "press_after_s", 1.0, where, source, allow_zero=True)
    refer_raw = raw.get("refer")
    if refer_raw is not None and refer_raw not in ReferAnswer.__members__.values():
        choices = ", ".join(r.value for r in ReferAnswer)
        raise ConfigError(f"{source}: {_field(where, 'refer')}: {refer_raw!r} is not one of {choices}")
    refer = None if refer_raw is None else ReferAnswer(refer_raw)
    return Treatment(action, hangup, answer_after, press, press_after, refer)


def _seconds(
    raw: Mapping[str, Any], key: str, default: float, where: str, source: str, *, allow_zero: bool
) -> float:
    value = raw.get(key, default)
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or value < 0 or (value == 0 and not allow_zero) or value > 86_400:
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{source}: {_field(where, key)}: must be a number of seconds {bound} (got {value!r})")
    return float(value)


def _field(where: str, key: str) -> str:
    """How an error names a field: ``rules[2].action`` inside a table, ``realm`` at the top level."""
    return f"{where}.{key}" if where else key


def _reject_unknown(raw: Mapping[str, Any], allowed: frozenset[str], where: str, source: str) -> None:
    for key in raw:
        if key not in allowed:
            raise ConfigError(f"{source}: {_field(where, key)}: unknown field (allowed: {', '.join(sorted(allowed))})")


def _list(data: Mapping[str, Any], key: str, source: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise ConfigError(f"{source}: {key}: must be an array of tables ([[{key}]])")
    return value


def _string(data: Mapping[str, Any], key: str, default: str, source: str) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or not value or '"' in value:
        raise ConfigError(f"{source}: {key}: must be a non-empty string without quotes")
    return value


def _bool(data: Mapping[str, Any], key: str, default: bool, source: str) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{source}: {key}: must be true or false (got {value!r})")
    return value


def _positive_int(data: Mapping[str, Any], key: str, default: int, source: str) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{source}: {key}: must be a positive whole number (got {value!r})")
    return value
