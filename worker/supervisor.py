"""Run many small worker processes on one host and replace any that dies.

pjsua2 can abort a process (an assertion is an abort, not an exception), and
one Endpoint holds at most 4 calls, so capacity comes from many processes,
each replaceable. The supervisor starts ``processes`` children
(``python -m worker.process``), restarts a child that exits unexpectedly with
backoff (its in-flight jobs become ``worker_lost`` attempts through the reaper
once their leases expire), serves the pool's metrics on one port, and on
SIGTERM/SIGINT asks every child for a warm shutdown (stop taking jobs, let
live calls end, record them) and exits 0 once they are gone.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

log = logging.getLogger(__name__)

BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 30.0
HEALTHY_AFTER_S = 60.0


@dataclass
class _Child:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    backoff: float = BACKOFF_MIN_S
    restart_at: float = 0.0
    restarts: int = 0
    log_path: str | None = field(default=None)


class Supervisor:
    def __init__(
        self,
        processes: int,
        *,
        trunk: str | None = None,
        log_level: str = "WARNING",
        metrics_port: int | None = None,
        shutdown_grace_s: float = 60.0,
        env: dict[str, str] | None = None,
        output: str | None = None,
    ) -> None:
        self.processes = processes
        self.trunk = trunk
        self.log_level = log_level
        self.metrics_port = metrics_port
        self.shutdown_grace_s = shutdown_grace_s
        self._env = dict(env if env is not None else os.environ)
        self._children = [_Child(i) for i in range(processes)]
        self._stopping = threading.Event()
        self._own_metrics_dir: str | None = None
        self._health_dir: str | None = None
        self._output = output  # a file the children's stdout/stderr go to (default: inherited)

    def _prepare_metrics(self) -> None:
        if not self._env.get("PROMETHEUS_MULTIPROC_DIR"):
            self._own_metrics_dir = tempfile.mkdtemp(prefix="dialer-metrics-")
            self._env["PROMETHEUS_MULTIPROC_DIR"] = self._own_metrics_dir
        folder = self._env["PROMETHEUS_MULTIPROC_DIR"]
        os.makedirs(folder, exist_ok=True)
        for name in os.listdir(folder):  # values of a previous run would be summed in
            if name.endswith(".db"):
                os.unlink(os.path.join(folder, name))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        self._health_dir = tempfile.mkdtemp(prefix="dialer-health-")
        if self.metrics_port is not None:
            from worker.health import serve

            # /metrics as before, and /healthz: 200 only once every child is registered and consuming.
            serve(self.metrics_port, self._env.get("DIALER_METRICS_HOST", "127.0.0.1"), Path(self._health_dir),
                  self.children_state)

    def _spawn(self, child: _Child) -> None:
        cmd = [sys.executable, "-m", "worker.process", "--index", str(child.index), "--log-level", self.log_level,
               "--shutdown-grace", str(self.shutdown_grace_s), "--processes", str(self.processes)]
        if self._health_dir:
            cmd += ["--health-dir", self._health_dir]
        if self.trunk:
            cmd += ["--trunk", self.trunk]
        if self._output is None:
            child.proc = subprocess.Popen(cmd, env=self._env)
        else:
            with open(self._output, "ab") as sink:
                child.proc = subprocess.Popen(cmd, env=self._env, stdout=sink, stderr=subprocess.STDOUT)
        child.started = time.monotonic()
        log.info("worker process %s started (pid %s)", child.index, child.proc.pid)

    def stop(self, *_: object) -> None:
        self._stopping.set()

    def children_state(self) -> dict[int, int | None]:
        """Index -> pid of each child that runs now (None while it waits to be restarted)."""
        return {c.index: (c.proc.pid if c.proc is not None and c.proc.poll() is None else None)
                for c in self._children}

    @property
    def pids(self) -> list[int]:
        return [c.proc.pid for c in self._children if c.proc is not None and c.proc.poll() is None]

    def run(self, install_signals: bool = True) -> int:
        if install_signals:
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        self._prepare_metrics()
        for child in self._children:
            self._spawn(child)
        try:
            while not self._stopping.wait(0.5):
                self._reap_and_restart()
        finally:
            self._shutdown_children()
            if self._own_metrics_dir:
                shutil.rmtree(self._own_metrics_dir, ignore_errors=True)
            if self._health_dir:
                shutil.rmtree(self._health_dir, ignore_errors=True)
        return 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.warning("signal %s: stopping workers (live calls are allowed to finish)", signum)
        self._stopping.set()

    def _reap_and_restart(self) -> None:
        from shared import metrics

        now = time.monotonic()
        for child in self._children:
            proc = child.proc
            if proc is not None and proc.poll() is not None:
                metrics.mark_process_dead(proc.pid)
                log.error("worker process %s (pid %s) exited with %s; restarting", child.index, proc.pid,
                          proc.returncode)
                lived = now - child.started
                child.backoff = BACKOFF_MIN_S if lived > HEALTHY_AFTER_S else min(child.backoff * 2, BACKOFF_MAX_S)
                child.restart_at = now + child.backoff
                child.proc = None
            if child.proc is None and now >= child.restart_at:
                child.restarts += 1
                self._spawn(child)

    def _shutdown_children(self) -> None:
        live = [c.proc for c in self._children if c.proc is not None and c.proc.poll() is None]
        for proc in live:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.shutdown_grace_s + 15
        for proc in live:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker pid %s did not stop in time; killing it", proc.pid)
                proc.kill()
                proc.wait()
