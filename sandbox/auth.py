"""Challenge / verify policy shared by the registrar (401) and the INVITE gate (407).

Nonces are random per challenge and remembered (bounded) so that a reply can be
told apart from a guess: an answer to a nonce we never issued, or one we have
forgotten, is re-challenged with ``stale=true`` instead of being refused, which
is how a carrier treats a client that comes back after a restart. A known nonce
with a wrong response, or an unknown user, is refused (403).

Not thread-safe: it is used only from the server thread.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from sandbox import digest
from sandbox.digest import DigestAnswer
from sandbox.plan import Plan

MAX_NONCES = 4096


class Verdict(Enum):
    """What to do with a request after looking at its credentials."""

    OK = "ok"
    CHALLENGE = "challenge"  # no (usable) credentials: 401 / 407
    STALE = "stale"  # a nonce we do not know: 401 / 407 with stale=true
    FORBIDDEN = "forbidden"  # wrong password or unknown user: 403


@dataclass(frozen=True)
class Check:
    """The verdict, and the user it concerns when one was named."""

    verdict: Verdict
    username: str | None = None


class Authenticator:
    """Issues nonces and checks digest answers against the plan's users."""

    def __init__(self, plan: Plan) -> None:
        self._plan = plan
        self._nonces: OrderedDict[str, None] = OrderedDict()

    def challenge(self, *, stale: bool = False) -> str:
        """A fresh challenge header value (a new random nonce each time)."""
        nonce = secrets.token_hex(16)
        self._nonces[nonce] = None
        while len(self._nonces) > MAX_NONCES:
            self._nonces.popitem(last=False)
        return digest.challenge(self._plan.realm, nonce, qop=self._plan.qop_auth, stale=stale)

    def check(self, answers: Sequence[DigestAnswer], method: str) -> Check:
        """Judge the credentials a request carried; answers for other realms are ignored."""
        answer = next((a for a in answers if a.realm == self._plan.realm), None)
        if answer is None:
            return Check(Verdict.CHALLENGE)
        if answer.nonce not in self._nonces:
            return Check(Verdict.STALE, answer.username)
        password = self._plan.password_for(answer.username)
        if password is None or not digest.verify(answer, password, method):
            return Check(Verdict.FORBIDDEN, answer.username)
        return Check(Verdict.OK, answer.username)
