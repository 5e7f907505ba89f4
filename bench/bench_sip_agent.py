"""Benchmark of the pjsua2 SIP agent against sipp on loopback; prints figures, asserts nothing.

    python bench/bench_sip_agent.py              # about a minute
    python bench/bench_sip_agent.py --calls 10000  # the leak check at full length

Figures: raw sipp UAC->UAS calls/s (the ceiling of the loopback peer, same
run); sequential calls/s of one agent; calls/s with four caller threads
(pace-limited at max_call_starts_per_s); live calls and starts/s one process
sustains with held calls; RSS per live call; RSS growth over N calls after
warm-up (the leak check). Every call is answered by sipp's answer_fast
scenario and hung up by us.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.sipp import HOST, SIPP, SippPeer, free_port, start_sipp_uas
from worker.sip import SipAccountConfig, SipAgent

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 1e6


def number(i: int) -> str:
    return f"+86139{i % 100_000_000:08d}"  # fictional 139 numbers


def raw_sipp_rate(peer: SippPeer, calls: int, workdir: Path) -> float:
    """sipp's own UAC against the same UAS: the most the loopback peer can do."""
    cmd = [SIPP, peer.address, "-sn", "uac", "-i", HOST, "-p", str(free_port()), "-mi", HOST, "-ci", HOST,
           "-m", str(calls), "-r", "2000", "-l", "200", "-d", "0", "-nostdin", "-timeout", "60s", "-skip_rlimit"]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return calls / (time.perf_counter() - start)


def run_calls(agent: SipAgent, count: int, threads: int, hold_s: float = 0.0, offset: int = 0) -> float:
    """Place ``count`` answered calls from ``threads`` threads; returns calls/s.

    Threads pull the next index from a shared counter: submitting every call
    to an executor up front would hold ``count`` futures in memory and
    show up as a fake leak.
    """
    failures = 0
    counter = itertools.count()
    lock = threading.Lock()

    def worker() -> None:
        nonlocal failures
        while (i := next(counter)) < count:
            result = agent.call(agent.uri_for(number(offset + i)), hold_s=hold_s)
            if not result.answered:
                with lock:
                    failures += 1

    start = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - start
    if failures:
        print(f"  !! {failures} of {count} calls not answered")
    return count / elapsed


def held_calls(agent: SipAgent, window_s: float, hold_s: float) -> tuple[float, float]:
    """Keep 8 callers dialling held calls for ``window_s``; returns (starts/s, mean live calls)."""
    stop_at = time.monotonic() + window_s
    started = 0
    samples: list[int] = []

    def caller(k: int) -> None:
        nonlocal started
        i = 0
        while time.monotonic() < stop_at:
            agent.call(agent.uri_for(number(5_000_000 + k * 10_000 + i)), hold_s=hold_s)
            started += 1
            i += 1

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(caller, k) for k in range(8)]
        while time.monotonic() < stop_at:
            samples.append(agent.live_calls)
            time.sleep(0.05)
        for f in futures:
            f.result()
    return started / window_s, sum(samples) / max(1, len(samples))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000, help="calls in the leak check (default 1000)")
    parser.add_argument("--rate", type=float, default=50.0, help="max_call_starts_per_s of the agent")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-sip-"))
    peer = start_sipp_uas("answer_fast", workdir, trace=False)
    try:
        print(f"raw sipp UAC->UAS on loopback: {raw_sipp_rate(peer, 3000, workdir):.0f} calls/s")
        agent = SipAgent(
            SipAccountConfig(registrar=peer.address, username="bench", password="not-a-real-secret"),
            max_call_starts_per_s=args.rate,
        )
        t0 = time.perf_counter()
        reg = agent.start()
        print(f"agent start + REGISTER: {(time.perf_counter() - t0) * 1000:.0f} ms ({reg.status if reg else '-'})")
        run_calls(agent, 100, 4)  # warm-up
        print(f"sequential calls, one thread: {run_calls(agent, 200, 1, offset=1000):.1f} calls/s")
        print(f"4 threads, hold 0 (pace {args.rate:g}/s): {run_calls(agent, 500, 4, offset=2000):.1f} calls/s")
        starts, live = held_calls(agent, window_s=6.0, hold_s=1.0)
        print(f"8 threads, hold 1 s: {starts:.1f} calls/s started, {live:.2f} live calls on average")
        idle = rss_mb()
        futures = [agent.place_call(agent.uri_for(number(9_000_000 + i)), hold_s=3.0) for i in range(4)]
        deadline = time.monotonic() + 5
        while agent.live_calls < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)
        busy = rss_mb()
        for f in futures:
            f.result()
        print(f"RSS idle {idle:.1f} MB, with 4 live calls {busy:.1f} MB: {(busy - idle) / 4 * 1000:.0f} kB per call")
        before = rss_mb()
        half = args.calls // 2
        rate = run_calls(agent, half, 4, offset=10_000_000)
        middle = rss_mb()
        rate = (rate + run_calls(agent, args.calls - half, 4, offset=20_000_000)) / 2
        after = rss_mb()
        print(f"leak check: {args.calls} calls at {rate:.1f}/s, RSS {before:.1f} -> {middle:.1f} -> {after:.1f} MB"
              f" (second half {(after - middle) * 1e6 / max(1, args.calls - half):+.0f} B per call)")
        t0 = time.perf_counter()
        agent.stop()
        print(f"agent stop (un-REGISTER + libDestroy): {(time.perf_counter() - t0) * 1000:.0f} ms")
    finally:
        peer.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
