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
    host part of our AOR and of dialled URIs. ``bind_address`` defaults to
    loopback so nothing leaves the machine unless a deployment says so.

    Routing: a dialled URI never carries a ``transport`` parameter, because a
    proxy that re-targets it (Kamailio's ``rewritehostport``, say) keeps the
    URI's parameters and would then try TCP or TLS towards a UDP-only gateway.
    The transport rides on the route to our first hop instead
    (``Route: <sip:proxy;transport=tcp;lr>``), as user agents do: that hop is
    ``outbound_proxy`` if set, else the registrar, and the route is added
    whenever the transport is not UDP or the hop is not the domain itself.
    ``sips`` asks for ``sips:`` URIs end to end (TLS only).

    TLS: the server certificate is verified against ``tls_ca_file`` (default:
    the system store) and must name the host we connect to; ``tls_verify =
    False`` turns that off and is warned about at every start.
    ``sip_outbound`` (RFC 5626) keeps pjsua's ``reg-id``/``+sip.instance``;
    each process then sends its own instance id, so processes on one host
    keep one binding each instead of replacing each other's.
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
    tls_verify: bool = True
    outbound_proxy: str | None = None
    sips: bool = False
    sip_outbound: bool = True

    def __post_init__(self) -> None:
        for what, value in (("registrar", self.registrar), ("domain", self.domain),
                            ("outbound_proxy", self.outbound_proxy)):
            if value is not None and not _HOSTPORT.match(value):
                raise ConfigError(f"trunk {self.name!r}: {what} must be host[:port], got {value!r}")
        if self.transport not in _TRANSPORTS:
            raise ConfigError(f"trunk {self.name!r}: transport must be one of {_TRANSPORTS}")
        if self.sips and self.transport != "tls":
            raise ConfigError(f"trunk {self.name!r}: sips = true needs transport = \"tls\"")
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

    @property
    def scheme(self) -> str:
        return "sips" if self.sips else "sip"

    @property
    def first_hop(self) -> str:
        """``host[:port]`` every request is sent to: the outbound proxy, else the registrar."""
        return self.outbound_proxy or self.registrar

    def registrar_uri(self) -> str:
        # No transport here either: REGISTER follows the same route as every request.
        return f"{self.scheme}:{self.registrar}"

    def account_uri(self) -> str:
        return f"{self.scheme}:{self.username}@{self.effective_domain}"

    def proxy_uris(self) -> tuple[str, ...]:
        """The outbound-proxy route, carrying the transport: ``sip:host:port;transport=tcp;lr``.

        Empty for UDP straight to the domain (nothing to say). A ``sips:``
        route implies TLS, so it names no transport.
        """
        hop = self.first_hop
        if self.transport == "udp" and hop == self.effective_domain and self.outbound_proxy is None:
            return ()
        transport = "" if self.transport == "udp" or self.sips else f";transport={self.transport}"
        return (f"{self.scheme}:{hop}{transport};lr",)

    def uri_for(self, user_part: str) -> str:
        """The request URI for one number variant, e.g. ``sip:+8613900001111@host`` (never a transport)."""
        if not _USER_PART.match(user_part):
            raise InvalidNumber(user_part, "not a dialable SIP user part (digits, optional leading +)")
        return f"{self.scheme}:{user_part}@{self.effective_domain}"


@dataclass(frozen=True)
class RegistrationResult:
    """The outcome of the latest REGISTER transaction (or un-REGISTER).

    ``challenges`` are the 401/407 responses pjsua answered with credentials
    on the way to ``status``, in order: ``(401,)`` for a registrar that
    challenges and then accepts (or, after a wrong password, answers 403).
    Codes only: the challenge and our digest stay inside pjsua.
    ``certificate_rejected``: no REGISTER left because the trunk's TLS
    certificate did not verify; a configuration error, like ``auth_rejected``.
    """

    status: int
    reason: str
    registered: bool
    expires_s: int
    at: datetime
    challenges: tuple[int, ...] = ()
    certificate_rejected: bool = False  # the trunk's TLS certificate failed verification; reason says why

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
