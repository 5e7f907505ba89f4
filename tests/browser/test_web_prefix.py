"""Behind a reverse proxy under /dialer, in Chinese and English, with /docs served from the package, not a CDN."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.browser.conftest import Server
from tests.browser.pages import new_context, session_cookie, shot, sign_in
from tests.browser.proxy import prefix_proxy
from tests.support.factories import add_jobs, create_campaign, fictional_numbers
from tests.support.fleet import wait_until
from tests.support.private_services import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_every_link_and_fetch_stays_under_the_proxy_prefix(
    browser: Any, server: Server, db: psycopg.Connection[Any], artefacts: Path
) -> None:
    """Through a proxy that only serves /dialer/...: sign in, each page, a live refresh, a ladder; no 404 anywhere."""
    campaign_id = create_campaign(db, name="behind-proxy", state="draft")
    add_jobs(db, campaign_id, fictional_numbers(3))
    with prefix_proxy(server.port, "/dialer") as (base, seen):
        context = new_context(browser)
        page = context.new_page()
        failed: list[str] = []
        page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status == 404 else None)
        sign_in(page, base, server.token)
        assert session_cookie(context)["path"] == "/dialer/"
        with page.expect_request(lambda r: r.url.startswith(f"{base}/ui/rows")):
            pass  # the list refreshes itself through the proxy
        page.click("text=behind-proxy")
        page.wait_for_selector("#jobs-table")
        page.click("#jobs-table [data-ladder] >> nth=0")
        page.wait_for_selector(".ladder")
        page.click("button[data-action=start]")
        page.wait_for_selector(".status[data-state=running]")
        page.click("header nav >> text=Do-not-call list")
        page.wait_for_selector("#dnc-list")
        page.click("header nav >> text=API docs")
        page.wait_for_selector(".swagger-ui .opblock")
        page.goto(f"{base}/ui/new")
        page.click("header >> a.lang")
        page.wait_for_selector("text=新建任务")
        shot(page, artefacts, "07-behind-proxy-zh")
        context.close()
    assert failed == []
    assert seen and all(line.split(" ", 1)[1].startswith("/dialer/") for line in seen), seen
    started = db.execute("SELECT state FROM campaigns WHERE id = %s", (campaign_id,)).fetchone()
    assert started in (("running",), ("finished",))  # the dispatcher may already have dialled all three


def test_root_path_option_serves_under_a_prefix_without_the_header(
    browser: Any, server: Server, db: psycopg.Connection[Any]
) -> None:
    """`dialer api --root-path /ops`, behind a proxy that strips /ops and says nothing: sign in, create, no 404."""
    port = free_port()
    api = server.fleet._start("api-root-path", ["api", "--port", str(port), "--root-path", "/ops"],  # its logging
                              server.fleet.env, None)
    wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz") or not api.alive, 60, "dialer api --root-path")
    with prefix_proxy(port, "/ops", tell=False) as (base, seen):
        context = new_context(browser)
        page = context.new_page()
        failed: list[str] = []
        page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        sign_in(page, base, server.token)
        page.click("text=New campaign")
        page.fill("#f-name", "under-root-path")
        page.click("form.form-grid button[type=submit]")
        page.wait_for_selector("#status")
        assert page.url.startswith(f"{base}/ui/campaigns/")
        context.close()
    api.signal(signal.SIGTERM)
    assert failed == []
    assert seen and all(line.split(" ", 1)[1].startswith("/ops/") for line in seen), seen
    assert db.execute("SELECT state FROM campaigns WHERE name = 'under-root-path'").fetchone() == ("draft",)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_language_follows_the_browser_and_the_switch(browser: Any, server: Server, artefacts: Path) -> None:
    """zh-CN from Accept-Language; the switch link sets a cookie that wins over the header."""
    context = new_context(browser, locale="zh-CN")
    page = context.new_page()
    page.goto(f"{server.base}/ui/login")
    assert page.inner_text("h1") == "登录"
    sign_in(page, server.base, server.token)
    assert page.inner_text("main h1") == "外呼任务"
    page.goto(f"{server.base}/ui/dnc")
    shot(page, artefacts, "08-dnc-zh")
    page.click("header >> a.lang")
    page.wait_for_selector("main h1 >> text=Do-not-call list")
    assert {c["name"]: c["value"] for c in context.cookies()}["dialer_lang"] == "en"
    page.goto(f"{server.base}/ui/")
    assert page.inner_text("main h1") == "Campaigns"
    context.close()


def test_api_docs_load_nothing_from_outside(browser: Any, server: Server, artefacts: Path) -> None:
    """/docs renders Swagger UI from the installed package; the browser asks no other host for anything."""
    context = new_context(browser)
    page = context.new_page()
    outside: list[str] = []
    context.route("**/*", lambda route: (outside.append(route.request.url), route.abort())
                  if not route.request.url.startswith(server.base) else route.continue_())
    page.goto(f"{server.base}/docs")
    page.wait_for_selector(".swagger-ui .opblock-summary-path >> text=/campaigns")
    shot(page, artefacts, "09-api-docs")
    assert outside == []
    context.close()
