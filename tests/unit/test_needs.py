"""A test whose service or tool is missing fails under CI and skips elsewhere, through one helper.

A skip looks like a pass in a green run, so the fault suite could vanish
unnoticed when its private Postgres could not start; these tests pin the rule
and that the suite has no other way to skip.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support import private_services
from tests.support.needs import in_ci, need_module, need_program, unavailable

TESTS = Path(__file__).resolve().parents[1]
AD_HOC_SKIP = re.compile(r"pytest\.skip\(|importorskip\(|pytest\.mark\.skip|skipif\(")


@pytest.mark.parametrize("value", ["true", "1", "TRUE", "yes"])
def test_missing_service_fails_under_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """CI=true: the reason is reported as a failure, not a skip."""
    monkeypatch.setenv("CI", value)
    assert in_ci()
    with pytest.raises(pytest.fail.Exception, match="sipp is not installed"):
        unavailable("sipp is not installed")


@pytest.mark.parametrize("value", [None, "", "false", "0"])
def test_missing_service_skips_with_its_reason_elsewhere(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    """No CI: a skip that says what is missing."""
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match="promtool is not installed"):
        unavailable("promtool is not installed")


def test_program_and_module_checks_name_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """need_program/need_module find what exists and fail (under CI) naming what does not, with the hint."""
    monkeypatch.setenv("CI", "true")
    assert need_program("sh", "always there").endswith("sh")
    assert need_module("json", "stdlib").__name__ == "json"
    with pytest.raises(pytest.fail.Exception, match=r"no-such-tool-x is not installed \(apt-get install x\)"):
        need_program("no-such-tool-x", "apt-get install x", "/nonexistent/no-such-tool-x")
    with pytest.raises(pytest.fail.Exception, match="no_such_module_x"):
        need_module("no_such_module_x", "pip install x")


def test_private_postgres_without_binaries_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fault suite's private cluster: no server binaries is a CI failure, not a vanished suite."""
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(private_services, "postgres_bin_dir", lambda: None)
    with pytest.raises(pytest.fail.Exception, match="no PostgreSQL server binaries"), \
            private_services.private_postgres():
        pass


def test_private_redis_that_cannot_start_fails_under_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A redis-server that exits at once (here: /bin/false) fails the test under CI with the reason."""
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(private_services, "redis_binary", lambda: "/bin/false")
    with pytest.raises(pytest.fail.Exception, match="private redis-server did not start"), \
            private_services.private_redis(tmp_path / "redis"):
        pass


def test_no_test_skips_another_way() -> None:
    """Every skip for a missing service goes through tests/support/needs.py, so CI can never skip one."""
    offenders = [
        f"{path.relative_to(TESTS)}:{number}: {line.strip()}"
        for path in sorted(TESTS.rglob("*.py")) if path.name not in {"needs.py", "test_needs.py"}
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if AD_HOC_SKIP.search(line)
    ]
    assert not offenders, "use tests.support.needs.unavailable() instead:\n" + "\n".join(offenders)
