"""Small steps the browser tests share: sign in, take a screenshot into the artefacts folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.browser.conftest import Server


def sign_in(page: Any, base: str, token: str) -> None:
    """Open the pages, land on sign-in, give the token, arrive at the campaigns list."""
    page.goto(f"{base}/ui/")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_selector("table#campaigns")


def shot(page: Any, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def session_cookie(context: Any) -> dict[str, Any]:
    return next(c for c in context.cookies() if c["name"] == "dialer_session")


def new_context(browser: Any, server: Server | None = None, **options: Any) -> Any:
    options.setdefault("viewport", {"width": 1360, "height": 900})
    options.setdefault("locale", "en-US")
    return browser.new_context(accept_downloads=True, **options)
