"""`dialer demo --keep-open`: it prints where the page is, the page shows the demo campaign, Ctrl-C ends it all."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis

from tests.browser.pages import new_context, shot, sign_in
from tests.support.fleet import DIALER

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]
ADDRESS = re.compile(r"web page: (http://127\.0\.0\.1:\d+)/ui/ \(sign in with the token in (\S+)\)")


@pytest.fixture
def own_services(admin_database_url: str, redis_server_url: str) -> Iterator[tuple[str, str]]:
    """A database and a Redis number of the demo's own: the session's server fleet must not take its jobs."""
    name = f"dialer_demo_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    base = redis.Redis.from_url(redis_server_url)
    claim = uuid.uuid4().hex
    number = next((n for n in range(15, 0, -1) if base.set(f"dialer-test-claim:{n}", claim, nx=True, ex=3600)), None)
    assert number is not None, "no free Redis database number"
    redis_url = urlunsplit(urlsplit(redis_server_url)._replace(path=f"/{number}"))
    redis.Redis.from_url(redis_url).flushdb()
    try:
        yield urlunsplit(urlsplit(admin_database_url)._replace(path=f"/{name}")), redis_url
    finally:
        redis.Redis.from_url(redis_url).flushdb()
        base.delete(f"dialer-test-claim:{number}")
        with psycopg.connect(admin_database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def test_demo_serves_its_campaign_page_until_ctrl_c(
    browser: Any, own_services: tuple[str, str], tmp_path: Path, artefacts: Path
) -> None:
    """The printed address serves the demo campaign, which reaches done live; the token is only in a 0600 file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIALER_", "PROMETHEUS_MULTIPROC"))}
    database_url, redis_url = own_services
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
            proc.communicate(timeout=10)
        reader.join(10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    assert proc.returncode == 0, "".join(lines)[-3000:]
    assert "Outcomes of campaign demo-" in stdout
    assert token not in stdout + "".join(lines)
