"""One worker OS process: one Celery worker (threads pool) around one registered SIP agent.

Why threads and not prefork children: a pjsua2 Endpoint holds up to 4 calls,
but a prefork child runs one task at a time, so it would hold one. Here each
process runs ``calls_per_process`` (the engine's limit, 4 with the PyPI wheel) task threads that share the process's
single Endpoint through the SIP agent's queue; the supervisor
(:mod:`worker.supervisor`) runs many such processes and replaces any that dies.

Started as ``python -m worker.process --trunk NAME --index I``, never forked
from a process that already has an Endpoint.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any

from celery import signals

from shared.logs import setup_logging
from shared.queue import dial_queue, make_celery
from shared.settings import load_settings
from worker import runtime
from worker.health import HealthFile
from worker.job_runner import begin_shutdown
from worker.sip.capacity import worker_limits
from worker.tasks import register_tasks

log = logging.getLogger(__name__)


def node_name(trunk: str, index: int) -> str:
    """Unique per process: the registration gate's remote control must reach this process alone."""
    return f"dialer{index}-{trunk}-{os.getpid()}@{socket.gethostname()}"


def _stop_agent(grace_s: float) -> None:
    try:
        runtime.current().agent.stop(grace_s=grace_s)
    except RuntimeError:
        pass  # not started: nothing is live


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trunk", default=None)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--shutdown-grace", type=float, default=30.0)
    parser.add_argument("--processes", type=int, default=1,
                        help="how many worker processes share this host's RTP range")
    parser.add_argument("--health-dir", default=None, help="where this process writes <index>.json for /healthz")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)

    settings = load_settings()
    trunk = settings.trunk(args.trunk)
    queue = dial_queue(trunk.name)
    hostname = node_name(trunk.name, args.index)
    if settings.redis_url is None:
        from shared.errors import ConfigError

        raise ConfigError("DIALER_REDIS_URL: a worker needs the dialer's Redis")
    app = make_celery(settings.redis_url)
    health = HealthFile(Path(args.health_dir) / f"{args.index}.json" if args.health_dir else None)
    register_tasks(app)

    def stop_consuming() -> None:
        app.control.cancel_consumer(queue, destination=[hostname], reply=False)

    def resume_consuming() -> None:
        app.control.add_consumer(queue, destination=[hostname], reply=False)

    @signals.worker_init.connect(weak=False)  # type: ignore[untyped-decorator]  # celery is untyped
    def _start(**_: Any) -> None:
        # Blocks until the trunk account is registered: nothing is consumed before.
        try:
            runtime.start(settings, trunk.name, name=f"{hostname}:{os.getpid()}",
                          stop_consuming=stop_consuming, resume_consuming=resume_consuming,
                          process=(args.index, max(args.processes, args.index + 1)), health=health)
        except Exception:
            # Celery would go on consuming without a runtime; exit and let the supervisor restart us.
            log.exception("worker runtime failed to start; exiting for the supervisor to restart")
            os._exit(3)

    @signals.worker_ready.connect(weak=False)  # type: ignore[untyped-decorator]  # celery is untyped
    def _ready(**_: Any) -> None:
        health.update(ready=True)  # the consumer runs: with the gate open, this process takes jobs

    @signals.worker_shutting_down.connect(weak=False)  # type: ignore[untyped-decorator]  # celery is untyped
    def _drain(**_: Any) -> None:
        # Celery stops consuming and waits for running tasks; the agent lets live calls run for the
        # grace, then hangs up the rest, so every task returns and records its call before exit.
        health.update(ready=False)
        begin_shutdown()  # an outcome Postgres cannot take now is spooled to disk, not lost to the kill
        threading.Thread(target=_stop_agent, args=(args.shutdown_grace,), name="drain", daemon=True).start()

    @signals.worker_shutdown.connect(weak=False)  # type: ignore[untyped-decorator]  # celery is untyped
    def _stop(**_: Any) -> None:
        runtime.stop(grace_s=args.shutdown_grace)

    app.worker_main([
        "worker", "--pool=threads", f"--concurrency={worker_limits(settings).calls}", "-Q", queue,
        "-n", hostname, "--without-gossip", "--without-mingle", "--without-heartbeat",
        f"--loglevel={args.log_level}",
    ])


if __name__ == "__main__":
    main()
