"""The registrar: digest-authenticated REGISTER, with bindings kept for inspection.

The sandbox never routes calls *to* registered users (it is the far end of a
trunk, not a PBX for phones), so bindings only matter for the 200 OK, which must
list the caller's current contacts with their remaining lifetime (RFC 3261
10.3 step 8); a UA such as pjsua2 checks that its own contact is in there.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sandbox.auth import Authenticator, Verdict
from sandbox.messages import Request
from sandbox.plan import Plan

DEFAULT_EXPIRES_S = 3600  # RFC 3261 section 10.2.1 (the Expires default), before clamping to the plan's maximum


@dataclass(frozen=True)
class Reply:
    """A response to send: status, reason and extra headers."""

    code: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()


class Registrar:
    """Answers REGISTER: 401 challenge, 403 on bad credentials, 200 with the bindings."""

    def __init__(self, plan: Plan, auth: Authenticator) -> None:
        self._plan = plan
        self._auth = auth
        self._lock = threading.Lock()
        self._bindings: dict[str, dict[str, float]] = {}  # username -> contact uri -> expiry (monotonic)

    def handle(self, request: Request) -> Reply:
        """Decide the response to one (non-retransmitted) REGISTER."""
        check = self._auth.check(request.digest_answers("authorization"), "REGISTER")
        if check.verdict in (Verdict.CHALLENGE, Verdict.STALE):
            challenge = self._auth.challenge(stale=check.verdict is Verdict.STALE)
            return Reply(401, "Unauthorized", (("WWW-Authenticate", challenge),))
        if check.verdict is Verdict.FORBIDDEN or check.username is None:
            return Reply(403, "Forbidden")
        return self._update(check.username, request)

    def bindings(self) -> dict[str, list[str]]:
        """Live contacts per username (a snapshot, safe from any thread)."""
        now = time.monotonic()
        with self._lock:
            return {user: [uri for uri, expiry in contacts.items() if expiry > now]
                    for user, contacts in self._bindings.items()}

    def _update(self, username: str, request: Request) -> Reply:
        default = request.expires_header()
        default = DEFAULT_EXPIRES_S if default is None else default
        now = time.monotonic()
        granted = 0
        with self._lock:
            mine = self._bindings.setdefault(username, {})
            for uri, expires in request.contacts():
                if uri == "*":
                    if default != 0 or len(request.contacts()) != 1:
                        return Reply(400, "Bad Request")  # RFC 3261 10.3 step 6
                    mine.clear()
                    continue
                lifetime = min(default if expires is None else expires, self._plan.max_expires_s)
                granted = max(granted, lifetime)
                if lifetime <= 0:
                    mine.pop(uri, None)
                else:
                    mine[uri] = now + lifetime
            for uri in [u for u, expiry in mine.items() if expiry <= now]:
                del mine[uri]
            headers = tuple(("Contact", f"<{uri}>;expires={max(1, round(expiry - now))}")
                            for uri, expiry in mine.items())
        date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
        return Reply(200, "OK", (*headers, ("Expires", str(granted)), ("Date", date)))
