"""The real Prometheus server for end-to-end tests: scrape loopback targets, answer PromQL.

Why a real one: a dashboard panel is only as good as the PromQL that Prometheus
accepts and the series it finds. Unit tests read the expressions as text; this
helper runs Debian's ``prometheus`` binary against processes a test started,
with the repo's own alert rules loaded, so a test can send every panel query
through ``/api/v1/query`` exactly as Grafana would.

:func:`running_prometheus` writes a ``prometheus.yml`` (1 s scrape and rule
evaluation, one static job per name, targets ``127.0.0.1:PORT`` only), copies
``deploy/prometheus/alerts.yml`` next to it, starts the server on a free
loopback port with its TSDB in the given directory, waits for ``/-/ready``
and stops it on exit (``/-/quit``, then SIGTERM, then SIGKILL). The server
dies with the test process (PR_SET_PDEATHSIG) and never listens beyond
127.0.0.1. :func:`require_prometheus` skips when the binary is missing
locally and fails under ``CI``, where .ci/run installs it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.embedded import free_port
from tests.support.dashboards import ALERTS_FILE
from tests.support.needs import need_program

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
HOST = "127.0.0.1"
_PR_SET_PDEATHSIG = 1

try:
    _prctl: Callable[..., int] | None = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: rely on the context manager's stop alone
    _prctl = None


def _die_with_parent() -> None:
    """Runs in the forked child before exec: Prometheus gets SIGTERM when the test process dies."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def require_prometheus() -> str:
    """The binary's path; skips the test when it is missing, fails when ``CI`` is set."""
    return need_program("prometheus", "Debian: apt-get install prometheus; .ci/run installs it", PROMETHEUS)


@dataclass(frozen=True)
class QueryResult:
    """One ``/api/v1/query`` answer: ``status`` is "success" or "error" (then ``error`` says why)."""

    expr: str
    status: str
    result_type: str
    result: list[Any]  # series dicts; for a scalar, [time, "value"]
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "success"

    @property
    def series(self) -> int:
        """Series in a vector or matrix answer; a scalar or string counts as one."""
        if self.result_type in ("scalar", "string"):
            return 1
        return len(self.result)

    def values(self) -> list[float]:
        """The sample values (the last one of each series for a matrix), NaN and Inf included."""
        if self.result_type in ("scalar", "string"):
            return [float(self.result[1])] if self.result else []
        if self.result_type == "matrix":
            return [float(s["values"][-1][1]) for s in self.result if s.get("values")]
        return [float(s["value"][1]) for s in self.result]

    def finite(self) -> list[float]:
        return [v for v in self.values() if math.isfinite(v)]

    def total(self) -> float:
        """Sum of the finite values; 0.0 for an empty answer (for polling a counter)."""
        return sum(self.finite())


def write_config(
    workdir: Path, targets: Mapping[str, Sequence[int]], *, interval_s: float = 1.0,
    rule_files: Sequence[Path] = (ALERTS_FILE,),
) -> Path:
    """A prometheus.yml scraping ``127.0.0.1:PORT`` per job, with copies of the rule files beside it."""
    workdir.mkdir(parents=True, exist_ok=True)
    rules = []
    for source in rule_files:
        shutil.copyfile(source, workdir / source.name)
        rules.append(source.name)  # relative: Prometheus resolves them from the config file's folder
    interval = f"{int(interval_s * 1000)}ms"
    config = {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "rule_files": rules,
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [f"{HOST}:{port}" for port in ports]}]}
            for job, ports in targets.items()
        ],
    }
    path = workdir / "prometheus.yml"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")  # JSON is YAML, and needs no yaml writer
    return path


class Prometheus:
    """A started Prometheus server and a small client for its HTTP API."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.process = process
        self.port = port
        self.log_path = log_path
        self.url = f"http://{HOST}:{port}"
        self._http = httpx.Client(base_url=self.url, timeout=10.0)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def _get(self, path: str, **params: str) -> dict[str, Any]:
        # Prometheus answers a bad query with 400/422 and a JSON body: read it whatever the status.
        response = self._http.get(path, params=params)
        body: dict[str, Any] = response.json()
        return body

    def query(self, expr: str) -> QueryResult:
        """Evaluate ``expr`` at the current time, as Grafana's instant queries do."""
        body = self._get("/api/v1/query", query=expr)
        data = body.get("data") or {}
        return QueryResult(expr=expr, status=str(body.get("status")), result_type=str(data.get("resultType", "")),
                           result=data.get("result") or [], error=str(body.get("error", "")))

    def targets(self) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self._get("/api/v1/targets")["data"]["activeTargets"]
        return active

    def rules(self) -> list[dict[str, Any]]:
        """Every loaded rule with its ``health`` ("ok", "err", "unknown") and ``lastError``."""
        groups = self._get("/api/v1/rules")["data"]["groups"]
        return [rule for group in groups for rule in group["rules"]]

    def wait_until(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Poll ``predicate`` (usually a query) until true; fail the test naming ``what`` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() >= deadline:
                pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
            if self.process.poll() is not None:
                pytest.fail(f"prometheus exited ({self.process.returncode}) waiting for {what}:\n{self.log_tail()}")
            time.sleep(0.25)

    def stop(self) -> None:
        """Ask it to quit (lifecycle API), then SIGTERM, then SIGKILL; always reaps the process."""
        self._http.close()
        if self.process.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(f"{self.url}/-/quit", timeout=2.0)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                try:
                    self.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=5)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _start(binary: str, config: Path, workdir: Path, ready_timeout_s: float) -> Prometheus:
    last = ""
    for _ in range(3):  # a free port can be taken by someone else before Prometheus binds it
        port = free_port(HOST)
        log_path = workdir / f"prometheus-{port}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
                 f"--web.listen-address={HOST}:{port}", "--web.enable-lifecycle", "--log.level=warn"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
                preexec_fn=_die_with_parent,  # only prctl runs there
            )
        server = Prometheus(process, port, log_path)
        deadline = time.monotonic() + ready_timeout_s
        while process.poll() is None and time.monotonic() < deadline:
            if _ready(server.url):
                return server
            time.sleep(0.1)  # a foreign process's start-up: there is no event to wait on
        server.stop()
        last = server.log_tail()
        if "address already in use" not in last:
            break
    raise RuntimeError(f"prometheus did not become ready within {ready_timeout_s:g} s:\n{last}")


@contextlib.contextmanager
def running_prometheus(
    workdir: Path, targets: Mapping[str, Sequence[int]], *, interval_s: float = 1.0,
    rule_files: Sequence[Path] = (ALERTS_FILE,), ready_timeout_s: float = 30.0,
) -> Iterator[Prometheus]:
    """A ready Prometheus scraping ``{job: [port, ...]}`` on 127.0.0.1 every ``interval_s``; stopped on exit."""
    binary = require_prometheus()
    config = write_config(workdir, targets, interval_s=interval_s, rule_files=rule_files)
    server = _start(binary, config, workdir, ready_timeout_s)
    try:
        yield server
    finally:
        server.stop()
