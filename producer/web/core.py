"""What every page shares: who is signed in, the CSRF check, the language, links under the proxy's prefix.

Links: every href, form action and fetch URL is built from the request's
``root_path`` (uvicorn's ``--root-path``, or a reverse proxy's
``X-Forwarded-Prefix``), so the pages work as well at ``/`` as under
``/dialer/`` behind a proxy that strips the prefix. Templates and scripts
never write an absolute path of their own.

Refusals: a page GET without a valid session redirects to the sign-in page
(and back after it); anything else without one gets 401, and a POST without
the session's CSRF token 403, before any producer function runs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import psycopg
from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from psycopg.rows import TupleRow

from producer.web import session
from producer.web.i18n import translator, word

Conn = psycopg.Connection[TupleRow]
SESSION_COOKIE = "dialer_session"
LOGIN_COOKIE = "dialer_login"
LANG_COOKIE = "dialer_lang"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
HERE = Path(__file__).parent
_PREFIX = re.compile(r"(/[A-Za-z0-9._~-]+)+")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class WebConfig:
    """Built once by :func:`producer.web.install`; lives on ``app.state.web``."""

    key: bytes
    api_token: bytes
    session_ttl_s: float
    region: str
    templates: Jinja2Templates


class ForwardedPrefix:
    """ASGI middleware: a proxy's ``X-Forwarded-Prefix: /dialer`` becomes the request's ``root_path``.

    Only a well-formed path prefix is taken (letters, digits, ``._~-`` between
    slashes); anything else is ignored, so a header cannot inject markup or a
    scheme into the links the pages build from it.
    """

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            for name, value in scope.get("headers", ()):
                if name == b"x-forwarded-prefix":
                    prefix = value.decode("latin-1").rstrip("/")
                    if _PREFIX.fullmatch(prefix):
                        scope = {**scope, "root_path": prefix}
                        if not scope["path"].startswith(prefix + "/"):  # the proxy stripped it: put it back,
                            # as uvicorn's --root-path does (the ASGI path includes root_path; routing strips it)
                            raw = scope.get("raw_path") or scope["path"].encode()
                            scope.update(path=prefix + scope["path"], raw_path=prefix.encode() + raw)
                    break
        await self.app(scope, receive, send)


def config(request: Request) -> WebConfig:
    return request.app.state.web  # type: ignore[no-any-return]


def root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def here(request: Request) -> str:
    """This request's path and query under the prefix (the path holds the prefix or not, by how it came)."""
    base, path = root(request), request.url.path
    full = path if base and path.startswith(base + "/") else base + path
    return full + (f"?{request.url.query}" if request.url.query else "")


def href(request: Request, path: str, **query: Any) -> str:
    """``/ui/...`` under the request's prefix, with a query string of the non-empty values."""
    pairs = {k: v for k, v in query.items() if v not in (None, "")}
    return root(request) + path + ("?" + urlencode(pairs) if pairs else "")


def connection(request: Request) -> Iterator[Conn]:
    with request.app.state.pool.connection() as conn:
        yield conn


class SignInRequired(Exception):
    """No valid session: pages redirect to sign-in, other requests get 401."""


def current_session(request: Request) -> session.Session:
    web = config(request)
    found = session.verify(web.key, request.cookies.get(SESSION_COOKIE), time.time(), web.session_ttl_s)
    if found is None:
        raise SignInRequired()
    return found


async def require_session(request: Request) -> session.Session:
    """Dependency of every signed-in route: the session, and for a state change its CSRF token checked."""
    found = current_session(request)
    if request.method not in ("GET", "HEAD"):
        given = request.headers.get(CSRF_HEADER)
        if given is None and request.headers.get("content-type", "").startswith(
                ("application/x-www-form-urlencoded", "multipart/form-data")):
            value = (await request.form()).get(CSRF_FIELD)
            given = value if isinstance(value, str) else None
        if not session.csrf_ok(config(request).key, found, given):
            raise HTTPException(403, "missing or wrong CSRF token; reload the page and try again")
    return found


def language(request: Request) -> str:
    return session.pick_language(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page (or a fragment) with what every template uses: t, href, csrf, lang."""
    web = config(request)
    lang = language(request)
    try:
        csrf = session.csrf_token(web.key, current_session(request))
    except SignInRequired:
        csrf = ""
    base = {
        "t": translator(lang), "lang": lang, "csrf": csrf, "root": root(request),
        "href": lambda path, **q: href(request, path, **q), "fmt_time": fmt_time, "fmt_duration": fmt_duration,
        "here": here(request), "quote": quote, "word": lambda code: word(lang, str(code)),
    }
    response = web.templates.TemplateResponse(request, template, {**base, **context}, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


def redirect(request: Request, path: str, **query: Any) -> RedirectResponse:
    return RedirectResponse(href(request, path, **query), status_code=303)


def cookie_path(request: Request) -> str:
    return root(request) + "/"


def secure(request: Request) -> bool:
    return request.url.scheme == "https"


def fmt_time(value: datetime | None, tz: str | None = None) -> str:
    """A time as an operator reads it: in the campaign's zone when given (the column says which), else with offset."""
    if value is None:
        return ""
    if tz is not None:
        return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S")
    return value.isoformat(sep=" ", timespec="seconds")


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{sec:02d}s"
