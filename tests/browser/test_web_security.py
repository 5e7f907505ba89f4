"""What the pages refuse: a wrong token, an expired or forged session, a state change without its CSRF token.

Each refusal is checked in the browser (what the person sees) and in the
database (nothing changed). The token itself must never appear in a URL the
browser requested, and the session cookie must be HttpOnly and SameSite=Strict.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from producer.web import session
from tests.browser.conftest import Server
from tests.browser.pages import new_context, session_cookie, shot, sign_in
from tests.support.factories import create_campaign

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_wrong_token_is_refused_and_the_right_one_never_reaches_a_url(
    browser: Any, server: Server, artefacts: Path
) -> None:
    """A wrong token gets 401 and the form again, no session; the right one signs in without touching a URL."""
    context = new_context(browser)
    page = context.new_page()
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    page.goto(f"{server.base}/ui/")
    page.fill("#token", "not-the-token-" + "x" * 20)
    with page.expect_response(lambda r: r.request.method == "POST") as refused:
        page.click("button[type=submit]")
    assert refused.value.status == 401
    assert page.is_visible("#login-error")
    assert all(c["name"] != "dialer_session" for c in context.cookies())
    shot(page, artefacts, "00-sign-in-refused")
    page.fill("#token", server.token)
    page.click("button[type=submit]")
    page.wait_for_selector("table#campaigns")
    cookie = session_cookie(context)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert server.token not in cookie["value"]
    assert not any(server.token in url for url in urls)
    assert server.token not in server.api.log_text()
    context.close()


def test_expired_and_forged_sessions_are_sent_to_sign_in(browser: Any, server: Server) -> None:
    """A cookie past its lifetime, or signed with another key, opens no page and changes nothing."""
    key = session.derive_key(server.token.encode())
    expired = session.issue(key, time.time() - session.DEFAULT_TTL_S - 120)
    forged = session.issue(session.derive_key(b"some other token entirely"), time.time())
    for value in (expired, forged):
        context = new_context(browser)
        context.add_cookies([{"name": "dialer_session", "value": value, "url": server.base}])
        page = context.new_page()
        page.goto(f"{server.base}/ui/dnc")
        assert "/ui/login" in page.url
        assert page.is_visible("#login-error")  # "please sign in (your session ended)"
        response = context.request.post(f"{server.base}/ui/dnc/add", form={"number": "139 0000 9999"},
                                        max_redirects=0)
        assert response.status == 401
        context.close()


def test_state_changes_without_the_csrf_token_are_refused(
    browser: Any, server: Server, db: psycopg.Connection[Any]
) -> None:
    """Signed in, but no (or a wrong) CSRF token: 403 on start, create, DNC add and upload; nothing changes."""
    campaign_id = create_campaign(db, name="csrf-target", state="draft")
    context = new_context(browser)
    page = context.new_page()
    sign_in(page, server.base, server.token)
    posts: list[tuple[str, dict[str, Any]]] = [
        (f"/ui/campaigns/{campaign_id}/start", {"form": {}}),
        (f"/ui/campaigns/{campaign_id}/cancel", {"form": {"confirm": "yes", "csrf_token": "wrong"}}),
        ("/ui/new", {"form": {"name": "sneaky", "trunk": "default"}}),
        ("/ui/dnc/add", {"form": {"number": "139 0000 9999"}}),
        (f"/ui/campaigns/{campaign_id}/upload",
         {"multipart": {"file": {"name": "a.csv", "mimeType": "text/csv", "buffer": b"phone\n13900009998\n"}}}),
        ("/ui/dnc/upload",
         {"multipart": {"file": {"name": "a.csv", "mimeType": "text/csv", "buffer": b"phone\n13900009997\n"}}}),
    ]
    for path, body in posts:
        response = context.request.post(server.base + path, max_redirects=0, **body)
        assert response.status == 403, (path, response.status)
    assert db.execute("SELECT state FROM campaigns WHERE id = %s", (campaign_id,)).fetchone() == ("draft",)
    assert db.execute("SELECT count(*) FROM campaigns").fetchone() == (1,)
    assert db.execute("SELECT count(*) FROM dnc").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM dial_jobs").fetchone() == (0,)
    token = page.get_attribute('meta[name="csrf-token"]', "content")
    ok = context.request.post(f"{server.base}/ui/campaigns/{campaign_id}/start",
                              headers={"X-CSRF-Token": token or ""}, max_redirects=0)
    assert ok.status == 303
    assert db.execute("SELECT state FROM campaigns WHERE id = %s", (campaign_id,)).fetchone() == ("running",)
    context.close()


def test_cancel_asks_first(browser: Any, server: Server, db: psycopg.Connection[Any], artefacts: Path) -> None:
    """Dismissing the confirmation keeps the campaign; accepting it cancels."""
    campaign_id = create_campaign(db, name="to-cancel", state="draft")
    context = new_context(browser)
    page = context.new_page()
    sign_in(page, server.base, server.token)
    page.goto(f"{server.base}/ui/campaigns/{campaign_id}")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("button[data-action=cancel]")
    assert db.execute("SELECT state FROM campaigns WHERE id = %s", (campaign_id,)).fetchone() == ("draft",)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button[data-action=cancel]")
    page.wait_for_selector(".status[data-state=cancelled]")
    assert db.execute("SELECT state FROM campaigns WHERE id = %s", (campaign_id,)).fetchone() == ("cancelled",)
    context.close()
