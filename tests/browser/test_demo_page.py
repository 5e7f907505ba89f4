"""`dialer demo --keep-open`: it prints where the page is, the page shows the demo campaign, Ctrl-C ends it all."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.browser.pages import new_context, shot, sign_in
from tests.support.fleet import DIALER

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]
ADDRESS = re.compile(r"web page: (http://127\.0\.0\.1:\d+)/ui/ \(sign in with the token in (\S+)\)")


def test_demo_serves_its_campaign_page_until_ctrl_c(
    browser: Any, database_url: str, redis_url: str, tmp_path: Path, artefacts: Path
) -> None:
    """The printed address serves the demo campaign, which reaches done live; the token is only in a 0600 file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIALER_", "PROMETHEUS_MULTIPROC"))}
    env.update(DIALER_DATABASE_URL=database_url, DIALER_REDIS_URL=redis_url, DIALER_DATA_DIR=str(tmp_path),
               PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([*DIALER, "demo", "--keep-open"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    found = threading.Event()
    ready = threading.Event()

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if ADDRESS.search(line):
                found.set()
            if "press Ctrl-C" in line:
                ready.set()
        found.set()
        ready.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        assert found.wait(120), "".join(lines)
        match = next(m for m in map(ADDRESS.search, lines) if m)
        base, token_file = match.group(1), Path(match.group(2))
        assert token_file.stat().st_mode & 0o077 == 0
        token = token_file.read_text().strip()
        context = new_context(browser)
        page = context.new_page()
        sign_in(page, base, token)
        page.click("#campaigns a >> nth=0")
        page.wait_for_selector(".status[data-done='1']", timeout=120_000)
        shot(page, artefacts, "10-demo-campaign")
        context.close()
        assert ready.wait(120), "".join(lines)
        assert proc.poll() is None  # held open after the run
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    reader.join(10)
    assert proc.returncode == 0, "".join(lines)[-3000:]
    assert "Outcomes of campaign demo-" in stdout
    assert token not in stdout + "".join(lines)
