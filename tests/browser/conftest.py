"""A running ``dialer api`` with workers, a dispatcher and the sandbox PBX, and Debian's Chromium to drive it.

Everything is the production command (``dialer api``, ``dialer worker``,
``dialer dispatch``) as a subprocess, against the session's real Postgres and
Redis; only the PBX is the sandbox. The browser is ``/usr/bin/chromium``
driven by Playwright: the machine cannot download Playwright's own build, so
``playwright install`` is never run. Screenshots go to ``tmp/artefacts/browser``
(or ``$DIALER_TEST_ARTEFACTS``); the path is printed.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.fleet import Fleet, ManagedProcess, dialer_env, running_fleet, wait_until
from tests.support.private_services import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Server:
    base: str  # http://127.0.0.1:PORT
    port: int
    token: str
    api: ManagedProcess
    fleet: Fleet

    def client(self) -> httpx.Client:
        """An API client with the bearer token, as a CRM would call it."""
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {self.token}"}, timeout=30)


def _artefacts_folder() -> Path:
    return Path(os.environ.get("DIALER_TEST_ARTEFACTS") or REPO / "tmp" / "artefacts") / "browser"


@pytest.fixture(scope="session")
def artefacts() -> Path:
    folder = _artefacts_folder()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say where the screenshots are, at the end of every run that took some."""
    folder = _artefacts_folder()
    if folder.is_dir() and any(folder.glob("*.png")):
        terminalreporter.write_line(f"browser test screenshots: {folder}")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM) or shutil.which("chromium") is None:
        pytest.fail("Debian's chromium is missing: apt-get install chromium (CI's .ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="package")  # gone before any other package's tests run: its dispatcher would take their jobs
def server(database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``dialer api`` plus two worker processes and a dispatcher, all dialling the sandbox PBX."""
    from sandbox import SandboxPbx, load_plan

    workdir = tmp_path_factory.mktemp("web")
    plan = load_plan()
    user = plan.users[0]
    pbx = SandboxPbx(plan, port=0)
    pbx.start()
    token = secrets.token_urlsafe(24)
    port = free_port()
    env = dialer_env(database_url=database_url, redis_url=redis_url, registrar=f"127.0.0.1:{pbx.port}",
                     username=user.username, password=user.password,
                     extra={"DIALER_API_TOKEN": token, "DIALER_DATA_DIR": str(workdir / "data"),
                            "DIALER_LEASE_GRACE_S": "10"})
    try:
        with running_fleet(workdir, env) as fleet:
            fleet.start_worker(2)
            fleet.start_dispatcher(interval_s=0.2)
            api = fleet._start("api", ["api", "--port", str(port)], env, None)  # the fleet's own log handling
            base = f"http://127.0.0.1:{port}"

            def healthy() -> bool:
                try:
                    return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_until(lambda: healthy() or not api.alive, 60, "dialer api to answer /healthz")
            assert api.alive, api.log_text()
            yield Server(base, port, token, api, fleet)
            assert token not in "".join(p.read_text(errors="replace") for p in fleet.log_files())
    finally:
        pbx.stop()

