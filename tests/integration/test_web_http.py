"""The web pages over plain HTTP (FastAPI's TestClient, real Postgres): redirects, headers, prefixes, refusals.

The browser tests (tests/browser) show the pages work for a person; these pin
the HTTP contract underneath, quickly and without a browser.
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)  # as in test_api.py: httpx still works
    from fastapi.testclient import TestClient

from producer.api import create_app
from producer.web import session
from tests.support.factories import create_campaign

pytestmark = pytest.mark.integration
TOKEN = "web-test-token-0123456789abcdef"


@pytest.fixture
def client(database_url: str, db: psycopg.Connection[Any], tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(database_url, TOKEN, data_dir=tmp_path, pool_size=2),
                    follow_redirects=False) as test_client:
        yield test_client


def _sign_in(client: TestClient, headers: dict[str, str] | None = None) -> str:
    """Sign in through the form; returns the CSRF token of the new session."""
    form = client.get("/ui/login", headers=headers).text
    nonce = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert nonce is not None
    signed = client.post("/ui/login", data={"token": TOKEN, "csrf_token": nonce.group(1)}, headers=headers)
    assert signed.status_code == 303
    page = client.get("/ui/", headers=headers).text
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', page)
    assert csrf is not None
    return csrf.group(1)


def test_pages_without_a_session_go_to_sign_in_and_back(client: TestClient) -> None:
    """/ leads to /ui/, which leads to sign-in with the way back in `next`; other methods get 401."""
    assert client.get("/").headers["location"] == "/ui/"
    to_login = client.get("/ui/campaigns/1?q=x")
    assert to_login.status_code == 303
    assert to_login.headers["location"] == "/ui/login?next=%2Fui%2Fcampaigns%2F1%3Fq%3Dx"
    assert client.post("/ui/dnc/add", data={"number": "13900009999"}).status_code == 401


def test_sign_in_needs_its_form_nonce_and_the_token(client: TestClient) -> None:
    """No nonce: 403. Wrong token: 401. Neither sets a session cookie."""
    client.get("/ui/login")
    assert client.post("/ui/login", data={"token": TOKEN, "csrf_token": "made-up"}).status_code == 403
    nonce = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/ui/login").text)
    assert nonce is not None
    refused = client.post("/ui/login", data={"token": TOKEN + "x", "csrf_token": nonce.group(1)})
    assert refused.status_code == 401
    assert "dialer_session" not in client.cookies


def test_pages_carry_security_headers_and_only_local_assets(client: TestClient) -> None:
    """CSP without outside hosts, no framing; /docs loads Swagger UI from this server, not a CDN."""
    _sign_in(client)
    page = client.get("/ui/")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    docs = client.get("/docs").text
    assert "/docs-assets/swagger-ui-bundle.js" in docs
    assert not re.search(r'(src|href)="https?://', docs)
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    assert client.get("/redoc").status_code == 404  # would load from a CDN: off


def test_forwarded_prefix_builds_links_and_a_bad_one_is_ignored(client: TestClient) -> None:
    """X-Forwarded-Prefix /dialer prefixes every link and redirect; markup in the header is not taken."""
    assert client.get("/ui/", headers={"X-Forwarded-Prefix": "/dialer"}).headers["location"].startswith(
        "/dialer/ui/login")
    form = client.get("/ui/login", headers={"X-Forwarded-Prefix": "/dialer/"}).text
    assert 'action="/dialer/ui/login"' in form and 'href="/dialer/ui/static/app.css"' in form
    evil = client.get("/ui/login", headers={"X-Forwarded-Prefix": '/x"><script>alert(1)</script>'}).text
    assert "<script>alert" not in evil and 'action="/ui/login"' in evil


def test_csrf_token_is_needed_for_every_change(client: TestClient, db: psycopg.Connection[Any]) -> None:
    """A signed-in POST without the token, or with another session's, is 403; with it, the change happens."""
    campaign_id = create_campaign(db, name="http-csrf", state="draft")
    csrf = _sign_in(client)
    other = session.csrf_token(session.derive_key(TOKEN.encode()),
                               session.Session("another-session", int(time.time())))
    for token in (None, "", other):
        data = {} if token is None else {"csrf_token": token}
        assert client.post(f"/ui/campaigns/{campaign_id}/start", data=data).status_code == 403
    assert client.post("/ui/logout", data={}).status_code == 403
    assert db.execute("SELECT state FROM campaigns").fetchone() == ("draft",)
    started = client.post(f"/ui/campaigns/{campaign_id}/start", data={"csrf_token": csrf})
    assert started.status_code == 303
    assert db.execute("SELECT state FROM campaigns").fetchone() == ("running",)
    refused = client.post(f"/ui/campaigns/{campaign_id}/start", data={"csrf_token": csrf})
    assert refused.status_code == 409 and "already running" in refused.text


def test_name_taken_is_shown_beside_the_name(client: TestClient, db: psycopg.Connection[Any]) -> None:
    """The database's unique name, refused by create_campaign, comes back as the name field's error."""
    create_campaign(db, name="taken", state="draft")
    csrf = _sign_in(client)
    reply = client.post("/ui/new", data={"csrf_token": csrf, "name": "taken", "trunk": "default"})
    assert reply.status_code == 400
    assert re.search(r'data-field="name">.*?already exists', reply.text, re.S)
