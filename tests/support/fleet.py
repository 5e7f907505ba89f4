"""Run the dialer as operators do, as subprocesses: ``dialer worker``, ``dialer dispatch`` and one-off commands.

Fault tests need real processes to kill: a SIGKILL of a worker child must
look to the rest of the system exactly as it does in production. A
:class:`Fleet` starts each command in its own session (process group) with
the environment a deployment would give it, sends every line it prints to a
log file of its own (so a test can grep them all, e.g. for a password), and
at teardown stops them all: SIGTERM first, then SIGKILL of the whole group,
so no worker child outlives the test even when its supervisor was killed.

Child worker processes are found through /proc (their parent is the
supervisor), since the supervisor runs one ``python -m worker.process`` per
``--processes``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.private_services import free_port

DIALER = [sys.executable, "-c", "from shared.cli import main; main()"]
_PR_SET_PDEATHSIG = 1

try:
    _prctl: Callable[..., int] | None = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None


def _own_session_dying_with_parent() -> None:
    """In the child before exec: a process group of its own, and SIGTERM when the test process dies."""
    os.setsid()
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.2) -> float:
    """Poll ``predicate`` until true; returns the seconds it took. Raises TimeoutError naming ``what``."""
    started = time.monotonic()
    deadline = started + timeout_s
    while True:
        if predicate():
            return time.monotonic() - started
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)


def parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
    return int(stat.rsplit(")", 1)[1].split()[1])


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and parent_of(int(entry.name)) == pid:
            found.append(int(entry.name))
    return sorted(found)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class ManagedProcess:
    """One command of the fleet: its Popen, its log and, for a worker supervisor, its /metrics port."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    metrics_port: int | None = None
    started_at: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def children(self) -> list[int]:
        """Live worker processes of a supervisor (its direct children)."""
        return [pid for pid in children_of(self.pid) if pid_alive(pid)]

    def signal(self, signum: int) -> None:
        if self.alive:
            self.proc.send_signal(signum)

    def wait(self, timeout_s: float) -> int:
        return self.proc.wait(timeout=timeout_s)

    def kill_group(self) -> None:
        """SIGKILL every process of the command's session, orphaned worker children included."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass(frozen=True)
class CommandResult:
    args: tuple[str, ...]
    returncode: int
    output: str


def dialer_env(
    *, database_url: str, redis_url: str, registrar: str, username: str, password: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of every fleet command: this one's, less any DIALER_* of the developer's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIALER_", "PROMETHEUS_MULTIPROC"))}
    env.update({
        "DIALER_DATABASE_URL": database_url, "DIALER_REDIS_URL": redis_url,
        "DIALER_SIP_REGISTRAR": registrar, "DIALER_SIP_USERNAME": username, "DIALER_SIP_PASSWORD": password,
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra or {})
    return env


class Fleet:
    """Starts fleet commands in ``workdir`` with ``env``; :meth:`stop` ends them all."""

    def __init__(self, workdir: Path, env: Mapping[str, str]) -> None:
        self.workdir = workdir
        self.env = dict(env)
        self.processes: list[ManagedProcess] = []
        self.commands_log = workdir / "commands.log"
        workdir.mkdir(parents=True, exist_ok=True)

    def _start(
        self, name: str, args: Sequence[str], env: Mapping[str, str], metrics_port: int | None
    ) -> ManagedProcess:
        log_path = self.workdir / f"{name}.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen([*DIALER, *args], env=dict(env), cwd=self.workdir, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT,
                                    preexec_fn=_own_session_dying_with_parent)  # setsid + prctl only
        handle = ManagedProcess(name, proc, log_path, metrics_port)
        self.processes.append(handle)
        return handle

    def start_worker(
        self, processes: int = 1, *, name: str | None = None, shutdown_grace_s: float = 5.0,
        log_level: str | None = "INFO", env: Mapping[str, str] | None = None, dialer_args: Sequence[str] = (),
    ) -> ManagedProcess:
        """``dialer worker --processes N`` with its own metrics folder and port (as on a host of its own).

        ``log_level=None`` leaves the level to ``dialer_args`` (options before ``worker``, e.g.
        ``--log-level INFO``) or DIALER_LOG_LEVEL, as a deployment does.
        """
        name = name or f"worker{len(self.processes)}"
        port = free_port()
        metrics_dir = self.workdir / f"{name}-metrics"
        metrics_dir.mkdir(exist_ok=True)
        full_env = {**self.env, **(env or {}), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
        args = [*dialer_args, "worker", "--processes", str(processes), "--metrics-port", str(port),
                "--shutdown-grace", f"{shutdown_grace_s:g}", *(["--log-level", log_level] if log_level else [])]
        return self._start(name, args, full_env, port)

    def start_dispatcher(
        self, *, name: str | None = None, interval_s: float = 0.5, extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> ManagedProcess:
        """``dialer dispatch --interval S --metrics-port P`` (the loop: dispatch due jobs, reap leases)."""
        name = name or f"dispatch{len(self.processes)}"
        port = free_port()
        args = ["--log-level", "INFO", "dispatch", "--interval", f"{interval_s:g}", "--metrics-port", str(port),
                *extra_args]
        return self._start(name, args, {**self.env, **(env or {})}, port)

    def run(self, *args: str, timeout_s: float = 120.0, env: Mapping[str, str] | None = None) -> CommandResult:
        """A one-off ``dialer`` command; its output is returned and appended to commands.log."""
        done = subprocess.run([*DIALER, *args], env={**self.env, **(env or {})}, cwd=self.workdir,
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s, check=False)
        output = (done.stdout + done.stderr).decode(errors="replace")
        with open(self.commands_log, "a", encoding="utf-8") as log:
            log.write(f"$ dialer {' '.join(args)}  (exit {done.returncode})\n{output}\n")
        return CommandResult(tuple(args), done.returncode, output)

    def log_files(self) -> list[Path]:
        return sorted(p for p in self.workdir.rglob("*.log") if p.is_file())

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM every live command, wait up to ``grace_s`` in all, then SIGKILL each whole group."""
        for handle in self.processes:
            handle.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for handle in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                handle.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for handle in self.processes:
            handle.kill_group()


@contextlib.contextmanager
def running_fleet(workdir: Path, env: Mapping[str, str], stop_grace_s: float = 20.0) -> Iterator[Fleet]:
    fleet = Fleet(workdir, env)
    try:
        yield fleet
    finally:
        fleet.stop(stop_grace_s)
