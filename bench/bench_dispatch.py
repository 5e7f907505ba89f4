"""Dispatcher throughput beside a bare Celery send loop, and dispatch lag at 80% of that throughput.

    python bench/bench_dispatch.py [--jobs 20000] [--lag-seconds 10]

Prints three figures, measured in the same run against the same Redis:

1. a bare ``send_task`` loop (``shared.queue.enqueue_dial``): messages/s, the
   ceiling any dispatcher could reach;
2. the dispatcher over ``--jobs`` due jobs with no caps: jobs/s from the first
   tick to the last message sent (target: at least half of 1);
3. dispatch lag at 80% of 2: jobs fall due at that rate for ``--lag-seconds``
   while a consumer loop pops the trunk's queue; lag = pop time - due time
   (target: p99 under 1 s).

Uses a fresh database and a Redis database number of its own (claimed like
the test suite does), on 127.0.0.1 or embedded servers, and removes both.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import os
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.services import fresh_database, own_redis_db
from producer.dispatcher import DispatchConfig, Dispatcher, TrunkLimits
from shared.queue import dial_queue, enqueue_dial, make_celery

TRUNK = "bench"
UNCAPPED = DispatchConfig(trunk_limits={TRUNK: TrunkLimits(10_000_000, 1e9)}, fleet_max_cps=1e9,
                          max_calls_per_number_per_day=1000, housekeeping_every_s=3600)


def bare_send_rate(redis_url: str, count: int) -> float:
    app = make_celery(redis_url)
    try:
        enqueue_dial(app, 0, TRUNK)  # connect and declare outside the timing
        started = time.perf_counter()
        for job_id in range(count):
            enqueue_dial(app, job_id, TRUNK)
        elapsed = time.perf_counter() - started
    finally:
        app.close()
        redis.Redis.from_url(redis_url).delete(dial_queue(TRUNK))
    return count / elapsed


def new_campaign(conn: psycopg.Connection[Any], name: str) -> int:
    row = conn.execute("INSERT INTO campaigns (name, trunk, state, max_concurrent, cps)"
                       " VALUES (%s, %s, 'running', 2000000000, 1e9) RETURNING id", (name, TRUNK)).fetchone()
    assert row is not None
    return int(row[0])


def dispatcher_rate(db_url: str, redis_url: str, count: int) -> float:
    app, client = make_celery(redis_url), redis.Redis.from_url(redis_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        cid = new_campaign(conn, f"throughput-{uuid.uuid4().hex[:8]}")
        conn.execute("INSERT INTO dial_jobs (campaign_id, e164, next_attempt_at)"
                     " SELECT %s, '+86139' || lpad(g::text, 8, '0'), now() - interval '1 second'"
                     " FROM generate_series(1, %s::int) g", (cid, count))
        conn.execute("VACUUM ANALYZE dial_jobs")
        dispatcher = Dispatcher(conn, app, client, UNCAPPED)
        enqueue_dial(app, 0, TRUNK)  # the same warm connection the bare loop had
        client.delete(dial_queue(TRUNK))
        started, sent = time.perf_counter(), 0
        while sent < count:
            sent += dispatcher.tick().dispatched
        elapsed = time.perf_counter() - started
    depth = int(client.llen(dial_queue(TRUNK)))
    assert depth == count, f"expected {count} messages, found {depth}"
    client.delete(dial_queue(TRUNK))
    app.close()
    return count / elapsed


def consume(redis_url: str, count: int, ready: Any, stop: Any, out: Any) -> None:
    """Consumer process: pop the trunk's queue like a worker would, note (job id, pop time)."""
    client = redis.Redis.from_url(redis_url)
    client.ping()
    ready.set()
    popped_at: list[tuple[int, float]] = []
    while len(popped_at) < count and not stop.is_set():
        popped = client.brpop([dial_queue(TRUNK)], timeout=1)
        if popped:
            now = time.time()
            popped_at.append((json.loads(base64.b64decode(json.loads(popped[1])["body"]))[0][0], now))
    out.put(popped_at)


def dispatch_lag(db_url: str, redis_url: str, rate: float, seconds: float) -> list[float]:
    """Lags (s) of jobs falling due at ``rate``/s, from due time to a consumer process popping their message.

    The jobs are written with due times far ahead, then shifted to start 0.5 s
    after the consumer is ready, so set-up time never counts as lag.
    """
    app, client = make_celery(redis_url), redis.Redis.from_url(redis_url)
    enqueue_dial(app, 0, "warm-up")  # a running dispatcher's broker connection is warm
    client.delete(dial_queue("warm-up"))
    count = int(rate * seconds)
    parked = time.time() + 86_400
    spawn = multiprocessing.get_context("spawn")
    ready, stop, out = spawn.Event(), spawn.Event(), spawn.Queue()
    consumer = spawn.Process(target=consume, args=(redis_url, count, ready, stop, out))
    consumer.start()
    with psycopg.connect(db_url, autocommit=True) as conn:
        cid = new_campaign(conn, "lag")
        with conn.cursor().copy("COPY dial_jobs (campaign_id, e164, next_attempt_at) FROM STDIN") as copy:
            for i in range(count):
                copy.write_row((cid, f"+86138{i:08d}", datetime.fromtimestamp(parked + i / rate, UTC)))
        conn.execute("VACUUM ANALYZE dial_jobs")
        if not ready.wait(120):
            raise SystemExit("the consumer process did not start")
        start = time.time() + 0.5
        conn.execute("UPDATE dial_jobs SET next_attempt_at = next_attempt_at - make_interval(secs => %s)"
                     " WHERE campaign_id = %s", (parked - start, cid))
        due = {job_id: at.timestamp() for job_id, at in conn.execute(
            "SELECT id, next_attempt_at FROM dial_jobs WHERE campaign_id = %s", (cid,))}
        halt = threading.Event()
        runner = threading.Thread(target=Dispatcher(conn, app, client, UNCAPPED).run, args=(halt, 0.2))
        runner.start()
        try:
            popped_at = out.get(timeout=seconds + 120)
        finally:
            stop.set()
            halt.set()
            runner.join()
            consumer.join()
    app.close()
    return [at - due[job_id] for job_id, at in popped_at]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000, help="due jobs for the throughput runs, in all")
    parser.add_argument("--rounds", type=int, default=3, help="alternating bare/dispatcher rounds (median)")
    parser.add_argument("--lag-seconds", type=float, default=10.0, help="length of the lag run")
    args = parser.parse_args()
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-dispatch-{uuid.uuid4().hex[:8]}"
    per_round = args.jobs // args.rounds
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with fresh_database(tmp) as db_url, own_redis_db(tmp) as redis_url:
        bare, ours = [], []
        for _ in range(args.rounds):  # alternate, so a neighbour's burst of load hits both alike
            bare.append(bare_send_rate(redis_url, per_round))
            ours.append(dispatcher_rate(db_url, redis_url, per_round))
        bare_rate, our_rate = statistics.median(bare), statistics.median(ours)
        print(f"bare send_task loop : {per_round} messages x {args.rounds}, median {bare_rate:7.0f} msg/s"
              f"  ({', '.join(f'{r:.0f}' for r in bare)})")
        print(f"dispatcher, no caps : {per_round} jobs x {args.rounds},     median {our_rate:7.0f} jobs/s"
              f"  ({', '.join(f'{r:.0f}' for r in ours)})  = {our_rate / bare_rate:.0%} of bare (target >= 50%)")
        rate = 0.8 * our_rate
        lags = dispatch_lag(db_url, redis_url, rate, args.lag_seconds)
        print(f"dispatch lag at {rate:.0f} jobs/s (80%): {len(lags)} jobs over {args.lag_seconds:.0f}s,"
              f" p50 {percentile(lags, 0.5):.3f}s  p99 {percentile(lags, 0.99):.3f}s"
              f"  max {max(lags):.3f}s (target p99 < 1s)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
