"""One rule for a test whose service or tool is missing: fail in CI, skip (saying why) elsewhere.

A skipped suite looks like a passed one in a green run, so in CI (``CI`` set to
true, as every CI service and ``.ci/run``'s caller do) a missing sipp,
promtool, PostgreSQL binary or a private server that cannot start fails the
test with the reason; on a developer's machine the test is skipped with the
same reason, so a partial setup still runs the rest. Every such check in the
test suite goes through :func:`unavailable` (tests/unit/test_needs.py holds it
to that).
"""

from __future__ import annotations

import importlib
import os
import shutil
from types import ModuleType
from typing import NoReturn

import pytest

_TRUE = ("1", "true", "yes", "on")


def in_ci() -> bool:
    """``CI`` says so: GitHub Actions, GitLab and this project's CI all set ``CI=true``."""
    return os.environ.get("CI", "").strip().lower() in _TRUE


def unavailable(reason: str) -> NoReturn:
    """Stop the test because something it needs is missing: a failure under CI, a skip elsewhere."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing service fails the run instead of skipping it)", pytrace=False)
    pytest.skip(reason)


def need_program(name: str, hint: str, path: str | None = None) -> str:
    """The program's path (``path`` if given and executable, else from PATH); ``hint`` says how to get it."""
    found = path if path is not None and os.access(path, os.X_OK) else shutil.which(name)
    if found is None:
        unavailable(f"{name} is not installed ({hint})")
    return found


def need_module(name: str, hint: str) -> ModuleType:
    """Import an optional package a test needs; ``hint`` says how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        unavailable(f"Python package {name} is not installed ({hint})")
