"""What the SIP agent is told (account settings) and what it tells back (results).

Pure data: no pjsua2 here, so the dial task, the recorder and the tests can
build, compare and print these without loading the SIP stack. The password is
kept out of every repr because these objects end up in logs and tracebacks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from shared.errors import ConfigError, InvalidNumber

Transport = Literal["udp", "tcp", "tls"]
HangupBy = Literal["local", "remote"]

_TRANSPORTS: tuple[Transport, ...] = ("udp", "tcp", "tls")
# host, [v6] host or host:port; no scheme, user or parameters.
_HOSTPORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$")
# A dialable user part: digits with an optional leading "+", plus the
# keypad symbols some trunks route on. Anything else could inject URI syntax.
_USER_PART = re.compile(r"^\+?[0-9*#]{1,32}$")
_AUTH_REJECTED = frozenset({401, 403, 407})


@dataclass(frozen=True)
class SipAccountConfig:
    """One SIP trunk account as a worker process uses it.

    ``registrar`` is ``host[:port]``; ``domain`` (default: the registrar) is the
    host part of our AOR and of dialled URIs. When the domain differs from the
    registrar, requests are routed through the registrar as outbound proxy,
    which is how most trunks want it. ``bind_address`` defaults to loopback so
    nothing leaves the machine unless a deployment says so.
    """

    registrar: str
    username: str
    password: str = field(repr=False)
    transport: Transport = "udp"
    realm: str | None = None
    domain: str | None = None
    register: bool = True
    reg_expires_s: int = 300
    local_port: int = 0
    bind_address: str = "127.0.0.1"
    name: str = "default"
    tls_ca_file: str | None = None

    def __post_init__(self) -> None:
        if not _HOSTPORT.match(self.registrar):
            raise ConfigError(f"trunk {self.name!r}: registrar must be host[:port], got {self.registrar!r}")
        if self.domain is not None and not _HOSTPORT.match(self.domain):
            raise ConfigError(f"trunk {self.name!r}: domain must be host[:port], got {self.domain!r}")
        if self.transport not in _TRANSPORTS:
            raise ConfigError(f"trunk {self.name!r}: transport must be one of {_TRANSPORTS}")
        if not self.username or any(c in self.username for c in "@:;<> "):
            raise ConfigError(f"trunk {self.name!r}: username is empty or holds URI syntax")
        if not 0 <= self.local_port <= 65535:
            raise ConfigError(f"trunk {self.name!r}: local_port must be 0..65535")
        if self.reg_expires_s < 1:
            raise ConfigError(f"trunk {self.name!r}: reg_expires_s must be positive")

    @property
    def effective_domain(self) -> str:
        """The domain of our AOR and of dialled URIs."""
        return self.domain or self.registrar

    def _transport_param(self) -> str:
        # UDP is the default for sip: URIs; naming it would only change nothing.
        return "" if self.transport == "udp" else f";transport={self.transport}"

    def registrar_uri(self) -> str:
        return f"sip:{self.registrar}{self._transport_param()}"

    def account_uri(self) -> str:
        return f"sip:{self.username}@{self.effective_domain}"

    def proxy_uris(self) -> tuple[str, ...]:
        """Outbound proxy route: the registrar, unless it already is the domain."""
        if self.effective_domain == self.registrar:
            return ()
        return (f"sip:{self.registrar};lr{self._transport_param()}",)

    def uri_for(self, user_part: str) -> str:
        """The request URI for one number variant, e.g. ``sip:+8613900001111@host``."""
        if not _USER_PART.match(user_part):
            raise InvalidNumber(user_part, "not a dialable SIP user part (digits, optional leading +)")
        return f"sip:{user_part}@{self.effective_domain}{self._transport_param()}"


@dataclass(frozen=True)
class RegistrationResult:
    """The outcome of the latest REGISTER transaction (or un-REGISTER).

    ``challenges`` are the 401/407 responses pjsua answered with credentials
    on the way to ``status``, in order: ``(401,)`` for a registrar that
    challenges and then accepts (or, after a wrong password, answers 403).
    Codes only: the challenge and our digest stay inside pjsua.
    """

    status: int
    reason: str
    registered: bool
    expires_s: int
    at: datetime
    challenges: tuple[int, ...] = ()

    @property
    def auth_rejected(self) -> bool:
        """The trunk refused our credentials: an alarm, never retried automatically."""
        return self.status in _AUTH_REJECTED


@dataclass(frozen=True)
class CallResult:
    """Everything the dial task needs to record one INVITE attempt.

    ``status``/``reason`` are the peer's final response; when the peer sent
    none (timeout, transport failure, agent stopped) they are the code pjsua
    reports locally (408, 503, ...) and ``error`` says what happened, so a
    caller can tell "the trunk said 503" from "nothing answered".
    ``first_provisional_at`` is the first 1xx of any kind (100 included);
    ``post_dial_delay_s`` counts to the first 18x only, since 100 Trying is
    hop-by-hop and says nothing about the callee. ``challenges`` are the
    401/407s pjsua answered by re-sending the INVITE with credentials, e.g.
    ``(407,)`` (codes only; a challenge pjsua could not answer is the final
    ``status`` instead).
    """

    uri: str
    call_id: str
    provisional: tuple[tuple[int, datetime], ...]
    status: int
    reason: str
    invite_at: datetime
    first_provisional_at: datetime | None
    answer_at: datetime | None
    end_at: datetime
    hangup_by: HangupBy
    ring_timeout_fired: bool
    error: str | None
    challenges: tuple[int, ...] = ()
    flow: Mapping[str, object] | None = None  # the answer script's report (worker.sip.answer)

    @property
    def rang(self) -> bool:
        return any(180 <= code < 190 for code, _ in self.provisional)

    @property
    def answered(self) -> bool:
        return self.answer_at is not None and 200 <= self.status < 300

    @property
    def talk_s(self) -> float:
        if self.answer_at is None:
            return 0.0
        return max(0.0, (self.end_at - self.answer_at).total_seconds())

    @property
    def setup_s(self) -> float:
        """INVITE to final response (the answer, or the end for a failed call)."""
        final_at = self.answer_at or self.end_at
        return max(0.0, (final_at - self.invite_at).total_seconds())

    @property
    def post_dial_delay_s(self) -> float | None:
        """INVITE to first 18x, or None when the callee never rang."""
        for code, at in self.provisional:
            if 180 <= code < 190:
                return max(0.0, (at - self.invite_at).total_seconds())
        return None
