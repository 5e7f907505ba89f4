"""Sign in with the API token, sign out, switch language.

The token arrives once, in the POST body of the sign-in form, is compared in
constant time and is then forgotten: the browser keeps only a signed session
id in an HttpOnly, SameSite=Strict cookie. A refusal is logged with the
client address only, as the API logs a wrong bearer token.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from producer.web import session
from producer.web.core import (
    LANG_COOKIE,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    config,
    cookie_path,
    href,
    page,
    root,
    secure,
)

log = logging.getLogger(__name__)
router = APIRouter()


def _login_page(request: Request, error: str = "", status_code: int = 200, next_path: str = "") -> HTMLResponse:
    nonce = session.login_nonce()
    response = page(request, "login.html", status_code, error=error, nonce=nonce, next_path=next_path)
    response.set_cookie(LOGIN_COOKIE, nonce, max_age=3600, path=cookie_path(request), httponly=True,
                        samesite="strict", secure=secure(request))
    return response


@router.get("/ui/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "", expired: int = 0) -> HTMLResponse:
    return _login_page(request, "expired" if expired else "", next_path=next)


@router.post("/ui/login")
def login(request: Request, token: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = "",
          next: Annotated[str, Form()] = "") -> Response:
    web = config(request)
    if not session.nonce_ok(request.cookies.get(LOGIN_COOKIE), csrf_token):
        return _login_page(request, "form_expired", 403, next)
    if not session.token_ok(web.api_token, token):
        client = request.client.host if request.client else "?"
        log.warning("refused web sign-in from %s: wrong token", client)
        return _login_page(request, "wrong_token", 401, next)
    response = RedirectResponse(session.safe_next(next, root(request)), status_code=303)
    response.set_cookie(SESSION_COOKIE, session.issue(web.key, time.time()), max_age=int(web.session_ttl_s),
                        path=cookie_path(request), httponly=True, samesite="strict", secure=secure(request))
    response.delete_cookie(LOGIN_COOKIE, path=cookie_path(request))
    return response


@router.get("/ui/lang/{code}")
def switch_language(request: Request, code: str, next: str = "") -> Response:
    """Remember a language choice (a preference cookie, not a change of any data)."""
    response = RedirectResponse(session.safe_next(next, root(request)), status_code=303)
    if code in session.LANGUAGES:
        response.set_cookie(LANG_COOKIE, code, max_age=365 * 86400, path=cookie_path(request),
                            samesite="strict", secure=secure(request))
    return response


@router.get("/", include_in_schema=False)
def home(request: Request) -> Response:
    return RedirectResponse(href(request, "/ui/"), status_code=303)
