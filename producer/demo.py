"""``dialer demo``: the whole system on one machine, in under a minute, with nothing set up.

Embedded Postgres and Redis (unless URLs are set), the sandbox PBX on
loopback, the reference AI agent (a Media Streams WebSocket server, for the
flow's ``stream`` branch), two supervised worker processes with registered
pjsua2 endpoints, and a dispatcher, dialling a shipped sample list of fictional numbers (with
bad rows, a duplicate, a DNC entry and a premium-rate number), then the
outcome table. Every piece is the production one; only the PBX is a stand-in.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
import redis

from producer.campaigns import CampaignSpec, FlowSpec, campaign_status, change_state, create_campaign
from producer.demo_flow import ACTING_CALLEES, write_demo_flow
from producer.demo_web import demo_web
from producer.dispatcher import DispatchConfig, run_forever
from producer.dnc import add_dnc
from producer.upload.ingest import UploadSummary, ingest_file
from producer.upload.single import enqueue_number
from shared.db.migrate import migrate
from shared.embedded import ServiceUrls, free_port, services
from shared.outcomes import Outcome
from shared.queue import make_celery
from shared.settings import Settings, load_settings

DEMO_DNC = "+8613900007777"
TERMINAL = ("completed", "failed", "cancelled", "skipped_dnc")


@dataclass(frozen=True, slots=True)
class DemoResult:
    campaign: str
    upload: UploadSummary
    jobs: list[dict[str, Any]]
    status: dict[str, Any]
    rejects: list[tuple[int, str, str, str]]
    finished: bool
    elapsed_s: float


def sample_csv() -> Path:
    resource = resources.files("producer") / "demo_data" / "demo.csv"
    return Path(str(resource))


@contextlib.contextmanager
def sandbox_pbx() -> Iterator[tuple[Any, str, str]]:
    from sandbox import SandboxPbx, load_plan

    plan = load_plan()
    user = plan.users[0]
    pbx = SandboxPbx(plan, port=0)
    pbx.start()
    try:
        yield pbx, user.username, user.password
    finally:
        pbx.stop()


def _campaign_spec(name: str, flow: Path) -> CampaignSpec:
    return CampaignSpec(
        name=name, trunk="default", ring_timeout_s=4.0, max_attempts=2, flow=FlowSpec.from_file(flow),
        retry_delays={Outcome.BUSY: timedelta(seconds=3), Outcome.NO_ANSWER: timedelta(seconds=3),
                      Outcome.TRANSIENT: timedelta(seconds=3), Outcome.WORKER_LOST: timedelta(seconds=3)},
        max_concurrent=8, cps=20.0,
    )


def _job_table(conn: psycopg.Connection[Any], campaign_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        """
        SELECT j.e164, j.metadata->>'name', j.status, j.outcome, j.attempts,
               COALESCE(string_agg(a.variant || ' ' || COALESCE(a.status_code::text, '-'), ', '
                                   ORDER BY a.attempt, a.try_index), ''),
               COALESCE(sum(a.duration_s), 0),
               (SELECT f.flow_steps FROM call_attempts f WHERE f.job_id = j.id AND f.flow_steps IS NOT NULL
                 ORDER BY f.attempt DESC, f.try_index DESC LIMIT 1)
          FROM dial_jobs j LEFT JOIN call_attempts a ON a.job_id = j.id
         WHERE j.campaign_id = %s
         GROUP BY j.id ORDER BY j.id
        """,
        (campaign_id,),
    ).fetchall()
    keys = ("e164", "name", "status", "outcome", "attempts", "tries", "talk_s", "flow")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def _wait_until_done(
    conn: psycopg.Connection[Any], campaign_id: int, timeout_s: float, report: Callable[[dict[str, int]], None]
) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        counts = dict(conn.execute(
            "SELECT status, count(*) FROM dial_jobs WHERE campaign_id = %s GROUP BY status", (campaign_id,)
        ).fetchall())
        report(counts)
        if counts and all(status in TERMINAL for status in counts):
            return True
        time.sleep(0.5)
    return False


def run_demo(
    settings: Settings,
    *,
    processes: int = 2,
    timeout_s: float = 60.0,
    metrics_port: int | None = None,
    say: Callable[[str], None] = print,
    progress: Callable[[dict[str, int]], None] = lambda _: None,
    keep: Callable[[], None] | None = None,
    web_port: int | None = None,
) -> DemoResult:
    """Run the demo end to end and return what happened; everything started here is stopped here.

    The web pages are served too (``dialer api``'s app, on loopback), so the campaign can be
    watched in a browser while it dials; ``keep`` holds everything up once it is done.
    """
    from producer.demo_agent import demo_agent
    from worker.supervisor import Supervisor

    started = time.monotonic()
    data_dir = settings.data_dir / "demo"
    with contextlib.ExitStack() as stack:
        if settings.database_url is None or settings.redis_url is None:
            say(f"starting embedded Postgres and Redis under {data_dir} ...")
        urls: ServiceUrls = stack.enter_context(services(settings.database_url, settings.redis_url, data_dir))
        migrate(urls.database_url)
        pbx, username, password = stack.enter_context(sandbox_pbx())
        say(f"sandbox PBX listening on udp 127.0.0.1:{pbx.port} (user {username})")
        env = {**os.environ, "DIALER_DATABASE_URL": urls.database_url, "DIALER_REDIS_URL": urls.redis_url,
               "DIALER_SIP_REGISTRAR": f"127.0.0.1:{pbx.port}", "DIALER_SIP_USERNAME": username,
               "DIALER_SIP_PASSWORD": password, "DIALER_LEASE_GRACE_S": "10", "DIALER_DATA_DIR": str(data_dir)}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        agent = stack.enter_context(demo_agent())
        say(f"reference AI agent on ws://127.0.0.1:{agent.port}/agent (the callee who presses 2 gets it)")
        conn = stack.enter_context(psycopg.connect(urls.database_url, autocommit=True))
        data_dir.mkdir(parents=True, exist_ok=True)
        say(stack.enter_context(demo_web(settings, urls.database_url, data_dir, web_port)))
        name = f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
        campaign_id = create_campaign(conn, _campaign_spec(name, write_demo_flow(data_dir, pbx.port, agent.port)))
        add_dnc(conn, DEMO_DNC, reason="asked not to be called (demo)")
        summary = ingest_file(conn, name, sample_csv(), data_dir=data_dir)
        for number, person in ACTING_CALLEES.items():  # callees that press keys and take transfers
            enqueue_number(conn, name, number, metadata={"name": person, "phone": number})
        say(f"campaign {name}: uploaded {summary.rows} rows: {summary.accepted} accepted, "
            f"{summary.duplicates} duplicate, {summary.dnc} on DNC, {summary.rejected} rejected")
        port = metrics_port if metrics_port is not None else free_port()
        supervisor = Supervisor(processes, trunk="default", metrics_port=port, shutdown_grace_s=5.0, env=env,
                                output=str(data_dir / "workers.log"))
        fleet = threading.Thread(target=supervisor.run, kwargs={"install_signals": False}, name="demo-workers")
        fleet.start()
        stack.callback(fleet.join)
        stack.callback(supervisor.stop)
        say(f"{processes} worker processes registering; metrics on http://127.0.0.1:{port}/metrics")
        stop = threading.Event()
        demo_settings = load_settings(database_url=urls.database_url, redis_url=urls.redis_url,
                                      sip_registrar=f"127.0.0.1:{pbx.port}", sip_username=username,
                                      sip_password=password, lease_grace_s=10)
        dispatcher = threading.Thread(
            target=run_forever,
            args=(lambda: psycopg.connect(urls.database_url, autocommit=True), make_celery(urls.redis_url),
                  redis.Redis.from_url(urls.redis_url), DispatchConfig.from_settings(demo_settings), stop),
            kwargs={"interval": 0.2}, name="demo-dispatcher", daemon=True,
        )
        dispatcher.start()
        stack.callback(dispatcher.join, 5)
        stack.callback(stop.set)
        change_state(conn, name, "start")
        finished = _wait_until_done(conn, campaign_id, timeout_s, progress)
        rejects = [tuple(r) for r in conn.execute(
            "SELECT row_number, field, raw_value, reason FROM upload_rejects WHERE upload_id = %s"
            " ORDER BY row_number", (summary.upload_id,)).fetchall()]
        result = DemoResult(
            campaign=name, upload=summary, jobs=_job_table(conn, campaign_id),
            status=campaign_status(conn, name), rejects=rejects,
            finished=finished, elapsed_s=time.monotonic() - started,
        )
        if keep is not None:
            keep()
        return result
