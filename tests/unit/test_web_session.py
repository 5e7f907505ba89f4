"""Sign-in sessions, CSRF tokens, language choice and redirect targets of the web pages (pure functions)."""

from __future__ import annotations

import pytest

from producer.web import session

KEY = session.derive_key(b"a-test-token-of-enough-length")
NOW = 1_900_000_000.0


def test_a_fresh_session_verifies_until_its_lifetime_ends() -> None:
    """Valid just before the TTL, refused just after; the cookie does not contain the token."""
    value = session.issue(KEY, NOW)
    assert "a-test-token" not in value
    assert session.verify(KEY, value, NOW + 99, ttl_s=100) is not None
    assert session.verify(KEY, value, NOW + 101, ttl_s=100) is None


@pytest.mark.parametrize("mangle", [
    lambda v: v[:-1] + ("0" if v[-1] != "0" else "1"),  # MAC changed
    lambda v: v.split(".")[0] + f".{int(NOW) + 3600}." + v.split(".")[2],  # issue time moved forward
    lambda v: "x" + v,  # id changed
    lambda v: v.replace(".", "", 1),  # malformed
    lambda v: "",
])
def test_a_tampered_cookie_is_refused(mangle: object) -> None:
    """Any change to id, time or MAC breaks the signature."""
    value = session.issue(KEY, NOW)
    assert session.verify(KEY, mangle(value), NOW, ttl_s=3600) is None  # type: ignore[operator]


def test_another_token_signs_everyone_out() -> None:
    """A session signed under the old token's key is refused under the new one."""
    value = session.issue(KEY, NOW)
    assert session.verify(session.derive_key(b"the-rotated-token-value"), value, NOW, ttl_s=3600) is None


def test_csrf_token_belongs_to_its_session() -> None:
    """The token of one session is wrong for another, and missing is wrong."""
    first = session.verify(KEY, session.issue(KEY, NOW), NOW, 3600)
    second = session.verify(KEY, session.issue(KEY, NOW), NOW, 3600)
    assert first is not None and second is not None
    assert session.csrf_ok(KEY, first, session.csrf_token(KEY, first))
    assert not session.csrf_ok(KEY, second, session.csrf_token(KEY, first))
    assert not session.csrf_ok(KEY, first, None)
    assert not session.csrf_ok(KEY, first, "")


@pytest.mark.parametrize(("cookie", "header", "expected"), [
    (None, "zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"),
    (None, "en-US,en;q=0.9,zh-CN;q=0.8", "en"),
    (None, "fr-FR,zh-TW;q=0.7,en;q=0.5", "zh-CN"),
    (None, "de-DE", "en"),
    (None, None, "en"),
    (None, "en;q=0.1, zh;q=0.9", "zh-CN"),
    (None, "zh;q=0", "en"),
    ("en", "zh-CN", "en"),
    ("zh-CN", "en", "zh-CN"),
    ("klingon", "zh-CN", "zh-CN"),
])
def test_language_from_cookie_then_accept_language(cookie: str | None, header: str | None, expected: str) -> None:
    """The switch's cookie wins; else the highest-quality known language; else English."""
    assert session.pick_language(cookie, header) == expected


@pytest.mark.parametrize(("target", "root", "expected"), [
    ("/ui/campaigns/3", "", "/ui/campaigns/3"),
    ("/dialer/ui/dnc?q=1", "/dialer", "/dialer/ui/dnc?q=1"),
    ("//evil.example/ui/", "", "/ui/"),
    ("https://evil.example/", "", "/ui/"),
    ("/ui/x", "/dialer", "/dialer/ui/"),
    ("/\\evil.example", "", "/ui/"),
    (None, "/p", "/p/ui/"),
])
def test_redirects_stay_on_this_app(target: str | None, root: str, expected: str) -> None:
    """After sign-in or a language switch, only a path under this app's prefix is followed."""
    assert session.safe_next(target, root) == expected


def test_sign_in_form_nonce_must_match_its_cookie() -> None:
    """The sign-in form's double-submit value: equal to its cookie, or refused (either one missing too)."""
    nonce = session.login_nonce()
    assert session.nonce_ok(nonce, nonce)
    assert not session.nonce_ok(nonce, session.login_nonce())
    assert not session.nonce_ok(None, nonce) and not session.nonce_ok(nonce, None)
