"""Usage errors of the ``dialer`` command: the usage line and what was wrong, exit 2, never a traceback.

Run as a user runs it: the installed ``dialer`` console script in a subprocess,
importing this tree. Whatever typer and click releases are installed (typer
0.29 vendors its own click, which once turned every usage error into a
traceback), these must keep their shape.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def dialer(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DIALER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    script = shutil.which("dialer")
    command = [script] if script else [sys.executable, "-c", "from shared.cli import main; main()"]
    return subprocess.run([*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
                          check=False)


def assert_usage_error(done: subprocess.CompletedProcess[str], usage: str, what: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[0].startswith(f"Usage: dialer {usage}".rstrip()), done.stderr
    assert what in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("args", "usage", "what"),
    [
        (("call", "13900001111", "--flow", "x.toml"), "call", "No such option: --flow"),
        (("upload",), "upload", "Missing argument"),
        (("nosuchcmd",), "", "No such command 'nosuchcmd'"),
    ],
    ids=["unknown-option", "missing-argument", "unknown-command"],
)
def test_usage_error_is_one_message_and_exit_2(args: tuple[str, ...], usage: str, what: str, tmp_path: Path) -> None:
    """An unknown option, a missing argument, an unknown command: usage line, the reason, exit 2, no traceback."""
    assert_usage_error(dialer(*args, cwd=tmp_path), usage, what)
