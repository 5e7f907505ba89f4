"""Sign-in sessions, CSRF tokens and the language choice of the web pages: pure functions, no I/O.

Why no server-side session store: the pages run in the API process, which may
be one of several behind a proxy, and a session needs nothing but "this
browser proved it knew the token, at this time". So the session cookie is
``<random id>.<issued at>.<HMAC>`` under a key derived from the API token:
rotating ``DIALER_API_TOKEN`` signs every browser out, a cookie past its
lifetime is refused, and the token itself is never stored in the cookie.

CSRF: a synchronizer token derived from the session id (HMAC again), put in
every form and in the page for scripts, checked on every POST. The sign-in
form has no session yet: it uses a double-submit cookie instead.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

LANGUAGES = ("en", "zh-CN")
DEFAULT_LANGUAGE = "en"
DEFAULT_TTL_S = 8 * 3600.0


def derive_key(api_token: bytes) -> bytes:
    """The signing key of sessions: never the token itself, and it changes when the token does."""
    return hmac.new(api_token, b"sip-dialer web session v1", hashlib.sha256).digest()


def _mac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Session:
    sid: str
    issued_at: int


def issue(key: bytes, now: float) -> str:
    """A new session cookie value, issued at ``now`` (seconds since the epoch)."""
    body = f"{secrets.token_urlsafe(18)}.{int(now)}"
    return f"{body}.{_mac(key, body)}"


def verify(key: bytes, value: str | None, now: float, ttl_s: float) -> Session | None:
    """The session a cookie value proves, or None: missing, forged, from the future, or older than ``ttl_s``."""
    if not value or value.count(".") != 2:
        return None
    sid, issued, mac = value.split(".")
    if not hmac.compare_digest(mac, _mac(key, f"{sid}.{issued}")) or not issued.isdigit():
        return None
    age = now - int(issued)
    if age < -60 or age > ttl_s:  # a minute of clock skew between processes behind a proxy
        return None
    return Session(sid, int(issued))


def csrf_token(key: bytes, session: Session) -> str:
    """The CSRF token of a session: unguessable without the key, stable for the session's life."""
    return _mac(key, f"csrf.{session.sid}")


def csrf_ok(key: bytes, session: Session, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(given, csrf_token(key, session))


def login_nonce() -> str:
    """The double-submit value of the sign-in form (cookie and hidden field must match)."""
    return secrets.token_urlsafe(18)


def nonce_ok(cookie: str | None, field: str | None) -> bool:
    return bool(cookie) and bool(field) and hmac.compare_digest(str(cookie), str(field))


def token_ok(expected: bytes, given: str) -> bool:
    """The API token check of the sign-in form, in constant time, as the API's bearer check."""
    return hmac.compare_digest(given.encode(), expected)


def pick_language(cookie: str | None, accept_language: str | None) -> str:
    """The cookie's choice when it names a known language, else the best match of Accept-Language."""
    if cookie in LANGUAGES:
        return str(cookie)
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, index, tag.strip().lower()))
    for negative_q, _index, tag in sorted(ranked):
        if negative_q >= 0:
            break
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT_LANGUAGE


def safe_next(path: str | None, root: str) -> str:
    """Where to go back to after a redirect: a path under this app only, never another site."""
    if not path or not path.startswith(root + "/") or path.startswith("//") or "\\" in path or "\n" in path:
        return root + "/ui/"
    return path
