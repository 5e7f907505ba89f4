"""Worker health that tells the truth: "registered and consuming", not "process alive".

Each worker process keeps a small JSON file (:class:`HealthFile`) saying
whether its trunk account is registered, whether its gate is open and whether
Celery's consumer has started; it rewrites the file atomically on each change.
The supervisor serves ``/healthz`` next to ``/metrics`` on its one port
(:func:`serve`): 200 once every child it runs is registered and consuming,
else 503, with a JSON body saying which child is not and why. A file left by
a dead child does not count: only files whose pid the supervisor runs now do.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class HealthFile:
    """This process's health facts; ``path`` None keeps them in memory only (tests, `dialer call`)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._facts: dict[str, Any] = {"pid": os.getpid(), "registered": False, "gate_open": False,
                                       "ready": False}
        self._lock = threading.Lock()

    @property
    def facts(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._facts)

    def update(self, **facts: Any) -> None:
        """Change some facts and rewrite the file; under the lock, so a slower writer never lands last."""
        with self._lock:
            if all(self._facts.get(k) == v for k, v in facts.items()):
                return
            self._facts.update(facts, pid=os.getpid())
            if self.path is None:
                return
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            try:
                tmp.write_text(json.dumps(self._facts, sort_keys=True), encoding="utf-8")
                os.replace(tmp, self.path)
            except OSError:  # health is advisory: a full disk must not stop calls
                log.warning("cannot write health file %s", self.path, exc_info=True)


def child_verdict(facts: Mapping[str, Any] | None) -> tuple[bool, str]:
    """Whether one child is ready, and a word saying why not."""
    if facts is None:
        return False, "starting"
    if not facts.get("registered"):
        return False, "not registered"
    if not facts.get("gate_open"):
        return False, "not consuming (gate closed)"
    if not facts.get("ready"):
        return False, "not consuming yet"
    return True, "registered and consuming"


def aggregate(folder: Path, children: Mapping[int, int | None]) -> tuple[bool, dict[str, Any]]:
    """``children``: index -> live pid (None while being restarted). Returns (healthy, JSON body)."""
    report: dict[str, Any] = {}
    healthy = bool(children)
    for index, pid in sorted(children.items()):
        facts: dict[str, Any] | None = None
        if pid is not None:
            with contextlib.suppress(OSError, ValueError):
                found = json.loads((folder / f"{index}.json").read_text(encoding="utf-8"))
                if isinstance(found, dict) and found.get("pid") == pid:
                    facts = found
        ok, why = child_verdict(facts) if pid is not None else (False, "restarting")
        healthy = healthy and ok
        shown = {k: facts[k] for k in ("trunk", "registered", "gate_open", "ready") if facts and k in facts}
        report[str(index)] = {"pid": pid, "ok": ok, "state": why, **shown}
    return healthy, {"healthy": healthy, "workers": report}


def serve(port: int, addr: str, folder: Path, children: Callable[[], Mapping[int, int | None]]) -> ThreadingHTTPServer:
    """Serve ``/metrics`` (the pool's, as shared.metrics.serve does) and ``/healthz`` on one port."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

    registry: Any = None
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server's naming
            if self.path.split("?")[0] == "/healthz":
                healthy, body = aggregate(folder, children())
                self._send(200 if healthy else 503, "application/json", json.dumps(body).encode())
            elif self.path.split("?")[0] in ("/metrics", "/"):
                from prometheus_client import REGISTRY

                self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry or REGISTRY))
            else:
                self._send(404, "text/plain", b"not found\n")

        def _send(self, code: int, ctype: str, payload: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # scrapes are not news
            return

    server = ThreadingHTTPServer((addr, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health-http", daemon=True).start()
    return server
