"""``dialer dispatch``: run the dispatcher loop (or one tick), with its housekeeping and metrics.

Run as many as you like for availability: they share the pace through Redis
and split the trunks between them through Postgres advisory locks.
SIGTERM/SIGINT stop it after the current tick, never between a commit and
its messages.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
from typing import Annotated, Any

import psycopg
import redis
import typer

from producer.dispatcher import DispatchConfig, Dispatcher, TickReport, run_forever
from producer.reaper import ReaperConfig
from shared.cli import settings
from shared.queue import make_celery

log = logging.getLogger(__name__)


def register(app: typer.Typer) -> None:
    app.command("dispatch")(dispatch)


def dispatch(
    once: Annotated[bool, typer.Option("--once", help="Run one tick with housekeeping, print it, exit.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between idle ticks.", min=0.01)] = 0.2,
    metrics_port: Annotated[int | None, typer.Option(
        help="Serve /metrics on this port (default: DIALER_METRICS_PORT; 0 = off).")] = None,
    requeue_after: Annotated[float, typer.Option(
        help="Seconds in 'queued' after which a job's message counts as lost and is sent again.", min=1)] = 60.0,
    lease_grace: Annotated[float | None, typer.Option(
        help="Seconds past a lease before a dialing job counts as lost (default: DIALER_LEASE_GRACE_S).",
        min=0)] = None,
    batch_size: Annotated[int, typer.Option(help="Most jobs one campaign dispatches per tick.", min=1)] = 1000,
) -> None:
    """Move due jobs to the trunk queues within every cap; reap lost leases and lost messages."""
    from shared.db.migrate import migrate
    from shared.embedded import services

    cfg = settings()
    reaper_cfg = ReaperConfig(lease_grace_s=cfg.lease_grace_s if lease_grace is None else lease_grace,
                              requeue_after_s=requeue_after)
    config = DispatchConfig.from_settings(cfg, reaper=reaper_cfg, batch_size=batch_size)
    port = cfg.metrics_port if metrics_port is None else metrics_port
    with services(cfg.database_url, cfg.redis_url, cfg.data_dir) as urls:
        if cfg.database_url is None:
            migrate(urls.database_url)  # the embedded database is ours to keep up to date
        app = make_celery(urls.redis_url)
        client = redis.Redis.from_url(urls.redis_url)
        try:
            if once:
                with psycopg.connect(urls.database_url, autocommit=True,
                                     application_name="sip-dialer-dispatch") as conn:
                    report = Dispatcher(conn, app, client, config).tick(housekeeping=True)
                typer.echo(json.dumps(_report_json(report), ensure_ascii=False))
                return
            if port:
                from shared.metrics import serve

                serve(port, cfg.metrics_host)
            stop = threading.Event()
            _stop_on_signals(stop)
            log.warning("dispatcher running (interval %.2fs, metrics port %s)", interval, port or "off")
            run_forever(
                lambda: psycopg.connect(urls.database_url, autocommit=True,
                                        application_name="sip-dialer-dispatch"),
                app, client, config, stop, interval,
            )
        finally:
            client.close()
            with contextlib.suppress(Exception):
                app.close()


def _report_json(report: TickReport) -> dict[str, Any]:
    return {"dispatched": report.dispatched, "postponed": report.postponed, "requeued": report.requeued,
            "worker_lost": report.lost, "finished": report.finished, "reopened": report.reopened}


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: Any) -> None:
        log.warning("signal %d: stopping after this tick", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
