"""End-to-end dialling throughput and live-call capacity of `dialer worker` on this host.

Against a sipp UAS on loopback that answers at once, prints beside the raw sipp
UAC->UAS rate measured in the same run:
- calls/s end to end (message -> claim -> INVITE -> 200 -> BYE -> CDR committed)
  for one worker process and for several;
- answered calls held live at once across several processes, and RSS per live call.
Targets for one 2-core host: >= 100 calls/s end to end, >= 200 calls held live.

    python bench/bench_worker_fleet.py [--jobs 2000] [--processes 1,4,8] [--live-processes 52] [--hold 20]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg

from bench.services import fresh_database, own_redis_db
from shared.embedded import free_port
from shared.queue import enqueue_dial, make_celery
from tests.support.sipp import DEFAULT_KEYS, SIPP, start_sipp_uas


def raw_sipp_rate(port: int, calls: int) -> float:
    """sipp's own UAC against the same UAS: the ceiling of this host's loopback SIP."""
    start = time.monotonic()
    subprocess.run([SIPP, "-sn", "uac", f"127.0.0.1:{port}", "-i", "127.0.0.1", "-p", str(free_port()),
                    "-mi", "127.0.0.1", "-r", "2000", "-l", "200", "-m", str(calls), "-d", "0", "-nostdin",
                    "-timeout", "120s", "-skip_rlimit"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, timeout=180)
    return calls / (time.monotonic() - start)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def metric_sum(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


@contextmanager
def fleet(processes: int, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from shared.cli import main; main()", "worker", "--processes", str(processes),
         "--metrics-port", str(port), "--shutdown-grace", "5"],
        env={**env, "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="bench-metrics-")},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30 + processes * 2
    while time.monotonic() < deadline:
        try:
            if metric_sum(scrape(port), "dialer_registration_up") >= processes:
                break
        except OSError:
            pass
        time.sleep(0.2)
    else:
        proc.kill()
        raise SystemExit(f"{processes} worker processes did not register in time")
    proc.metrics_port = port  # type: ignore[attr-defined]
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def children_rss_kb(parent: int) -> int:
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if f"\nPPid:\t{parent}\n" in status:
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
    return total


def load_jobs(db_url: str, count: int, hold_s: float) -> list[int]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DELETE FROM call_attempts; DELETE FROM dial_jobs; DELETE FROM campaigns")
        campaign = conn.execute(
            "INSERT INTO campaigns (name, trunk, state, ring_timeout_s, hold_s, max_concurrent, cps)"
            " VALUES ('bench', 'default', 'running', 10, %s, 100000, 100000) RETURNING id", (hold_s,)
        ).fetchone()[0]  # type: ignore[index]
        with conn.cursor().copy("COPY dial_jobs (campaign_id, e164, status, due_at, queued_at) FROM STDIN") as copy:
            for i in range(count):
                copy.write_row((campaign, f"+86139{i:08d}", "queued", "now", "now"))
        return [r[0] for r in conn.execute("SELECT id FROM dial_jobs ORDER BY id")]


def run_throughput(db_url: str, redis_url: str, env: dict[str, str], processes: int, jobs: int) -> tuple[float, int]:
    with fleet(processes, env):
        ids = load_jobs(db_url, jobs, 0.0)
        app = make_celery(redis_url)
        start = time.monotonic()
        with app.producer_or_acquire() as producer:
            for job_id in ids:
                app.send_task("dialer.dial", args=[job_id], queue="dial.default", producer=producer)
        with psycopg.connect(db_url, autocommit=True) as conn:
            done = 0
            while done < jobs and time.monotonic() - start < 300:
                time.sleep(0.2)
                done = conn.execute("SELECT count(*) FROM dial_jobs WHERE status IN ('completed', 'failed')"
                                    ).fetchone()[0]  # type: ignore[index]
            answered = conn.execute("SELECT count(*) FROM dial_jobs WHERE outcome = 'answered'").fetchone()[0]  # type: ignore[index]
        return done / (time.monotonic() - start), answered


def run_live(db_url: str, redis_url: str, env: dict[str, str], processes: int, hold_s: float) -> tuple[int, float]:
    with fleet(processes, env) as proc:
        jobs = processes * 4
        ids = load_jobs(db_url, jobs, hold_s)
        app = make_celery(redis_url)
        base_rss = children_rss_kb(proc.pid)
        print(f"RSS of {processes} registered, idle worker processes: {base_rss / 1024:.0f} MB "
              f"({base_rss / 1024 / processes:.1f} MB each)")
        for job_id in ids:
            enqueue_dial(app, job_id, "default")
        peak, peak_rss = 0, base_rss
        deadline = time.monotonic() + hold_s
        while time.monotonic() < deadline:
            live = int(metric_sum(scrape(proc.metrics_port), "dialer_live_calls"))  # type: ignore[attr-defined]
            if live > peak:
                peak, peak_rss = live, children_rss_kb(proc.pid)
            time.sleep(0.5)
        return peak, (peak_rss - base_rss) / max(peak, 1) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--processes", default="1,4,8")
    parser.add_argument("--live-processes", type=int, default=52)
    parser.add_argument("--hold", type=float, default=20.0)
    args = parser.parse_args()

    with ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
        peer = start_sipp_uas("answer_fast", work, trace=False, timeout_s=1800)
        stack.callback(peer.stop)
        db_url = stack.enter_context(fresh_database(work))
        redis_url = stack.enter_context(own_redis_db(work))
        env = {**os.environ, "DIALER_DATABASE_URL": db_url, "DIALER_REDIS_URL": redis_url,
               "DIALER_SIP_REGISTRAR": peer.address, "DIALER_SIP_USERNAME": DEFAULT_KEYS["username"],
               "DIALER_SIP_PASSWORD": DEFAULT_KEYS["password"]}
        raw = raw_sipp_rate(peer.port, 5000)
        print(f"raw sipp UAC->UAS on loopback: {raw:8.1f} calls/s")
        for count in (int(p) for p in args.processes.split(",") if p):
            rate, answered = run_throughput(db_url, redis_url, env, count, args.jobs)
            print(f"end to end, {count:2d} worker process(es): {rate:8.1f} calls/s "
                  f"({answered}/{args.jobs} answered; {rate / raw:.0%} of raw sipp)")
        peak, rss = run_live(db_url, redis_url, env, args.live_processes, args.hold)
        print(f"live calls held at once, {args.live_processes} processes: {peak} "
              f"(target >= 200); RSS per live call {rss:.1f} MB")


if __name__ == "__main__":
    main()
