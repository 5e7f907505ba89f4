"""`dialer worker` end to end: supervised Celery worker processes, each with a registered pjsua2 endpoint.

Real everything: sipp as the carrier, Postgres, Redis, Celery over Redis, the
supervisor's multiprocess metrics endpoint, SIGTERM for a graceful stop.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Any

import psycopg
import pytest

from shared.embedded import free_port
from shared.queue import enqueue_dial, make_celery
from tests.support.factories import add_jobs, create_campaign, fictional_numbers
from tests.support.sipp import DEFAULT_KEYS

pytestmark = pytest.mark.integration


def wait_for(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def metric_sum(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_worker_fleet_dials_queued_jobs_once_and_stops_cleanly(
    db: psycopg.Connection[Any], database_url: str, redis_url: str, sipp_uas: Any, tmp_path: Any
) -> None:
    peer = sipp_uas("carrier")
    metrics_port = free_port()
    env = {
        **os.environ,
        "DIALER_DATABASE_URL": database_url, "DIALER_REDIS_URL": redis_url,
        "DIALER_SIP_REGISTRAR": peer.address, "DIALER_SIP_USERNAME": DEFAULT_KEYS["username"],
        "DIALER_SIP_PASSWORD": DEFAULT_KEYS["password"], "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from shared.cli import main; main()", "worker", "--processes", "2",
             "--metrics-port", str(metrics_port), "--shutdown-grace", "5", "--log-level", "INFO"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        campaign = create_campaign(db, ring_timeout_s=5)
        numbers = fictional_numbers(20)
        job_ids = add_jobs(db, campaign, numbers, status="queued")
        db.execute("UPDATE dial_jobs SET due_at = now(), queued_at = now()")
        app = make_celery(redis_url)
        for job_id in job_ids:
            enqueue_dial(app, job_id, "default")
        for job_id in job_ids[:5]:  # duplicate deliveries: must be dropped, never dialled
            enqueue_dial(app, job_id, "default")

        def all_done() -> bool:
            row = db.execute("SELECT count(*) FROM dial_jobs WHERE status = 'completed'").fetchone()
            return row is not None and row[0] == len(job_ids)

        wait_for(all_done, 90, "all jobs completed")
        outcomes = db.execute("SELECT outcome, count(*) FROM dial_jobs GROUP BY outcome").fetchall()
        assert outcomes == [("answered", 20)]
        answered = db.execute("SELECT count(*) FROM call_attempts WHERE outcome = 'answered'").fetchone()
        assert answered == (20,)
        invites_by_number: dict[str, int] = {}
        for dialog in peer.dialogs():
            if dialog.answered:
                invites_by_number[dialog.user] = invites_by_number.get(dialog.user, 0) + 1
        assert all(count == 1 for count in invites_by_number.values())
        assert len(invites_by_number) == 20

        def counted() -> bool:
            return metric_sum(scrape(metrics_port), "dialer_calls_total", outcome="answered") == 20

        wait_for(counted, 10, "metrics to show 20 answered calls")
        text = scrape(metrics_port)
        assert metric_sum(text, "dialer_duplicate_deliveries_total") == 5
        assert DEFAULT_KEYS["password"] not in text
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert code == 0
    assert DEFAULT_KEYS["password"] not in log_path.read_text(errors="replace")
