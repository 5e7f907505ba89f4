"""Full-size fault runs: what each fault costs in duplicate calls and lost outcomes, and how long recovery takes.

The same scenarios as tests/faults (tests/faults/scenarios.py), at full size,
each on a private Postgres, Redis and sipp carrier of its own (nothing shared
is stopped). Prints one table; every row must show 0 duplicate calls and 0
lost outcomes, else the details printed above it say which jobs and why.

    python bench/bench_faults.py [--jobs 2000] [--kills 6] [--only sigkill,redis,postgres,sigterm,scale]

Scenarios:
- sigkill:  --jobs jobs, 3 worker processes, --kills SIGKILLs of busy children spread over the run;
- redis:    half the jobs, Redis SIGKILLed and restarted empty twice;
- postgres: half the jobs, Postgres stopped for 20 s with calls live;
- sigterm:  SIGTERM of the worker host with every slot holding a 30 s call, --shutdown-grace 5;
- scale:    throughput of 1, 2 and 3 single-process worker hosts with 2 dispatchers (trunk caps out of the way).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.faults.checks import Tally  # after the path fix above
from tests.faults.rig import Plan, fault_rig
from tests.faults.scenarios import (
    run_postgres_outage,
    run_redis_restart,
    run_scale_out,
    run_sigkill,
    run_sigterm,
)

SIPP_TIMEOUT_S = 3600.0


def sigkill(root: Path, jobs: int, kills: int) -> list[Tally]:
    with fault_rig(root / "sigkill", sipp_timeout_s=SIPP_TIMEOUT_S) as rig:
        result, records = run_sigkill(rig, Plan("bench-kill", jobs=jobs), processes=3, kills=kills,
                                      settle_timeout_s=1800)
        print(f"    {len(records)} kills took down {sum(len(r.jobs) for r in records)} live jobs")
    return [result]


def redis(root: Path, jobs: int) -> list[Tally]:
    with fault_rig(root / "redis", sipp_timeout_s=SIPP_TIMEOUT_S) as rig:
        result, facts = run_redis_restart(rig, Plan("bench-redis", jobs=jobs), processes=3, restarts=2,
                                          down_s=2.0, settle_timeout_s=1800)
        print(f"    re-sent by the reaper: {facts.requeued}; worker processes that died and were"
              f" replaced: {facts.replaced}")
    return [result]


def postgres(root: Path, jobs: int) -> list[Tally]:
    with fault_rig(root / "postgres", sipp_timeout_s=SIPP_TIMEOUT_S) as rig:
        result, facts = run_postgres_outage(rig, Plan("bench-pg", jobs=jobs), processes=3, down_s=20.0,
                                            settle_timeout_s=1800)
        print(f"    calls live at the stop: {len(facts.live_at_stop)}; INVITEs while down:"
              f" {facts.invites_during_outage}")
    return [result]


def sigterm(root: Path) -> list[Tally]:
    with fault_rig(root / "sigterm", scenario="answer_fast", sipp_timeout_s=SIPP_TIMEOUT_S) as rig:
        result, facts = run_sigterm(rig, Plan("bench-term", jobs=60, hold_s=30.0), processes=3,
                                    shutdown_grace_s=5.0)
        print(f"    exit {facts.exit_code} after {facts.exit_s:.1f}s with {len(facts.live_at_term)} calls live;"
              f" INVITEs after the signal: {facts.invites_after_term}")
    return [result]


def scale(root: Path, jobs: int) -> list[Tally]:
    results = []
    for workers in (1, 2, 3):
        started = time.monotonic()
        with fault_rig(root / f"scale{workers}", trunk_max_concurrent=1000, trunk_max_cps=200,
                       sipp_timeout_s=SIPP_TIMEOUT_S) as rig:
            plan = Plan(f"bench-scale{workers}", jobs=jobs, max_concurrent=1000, cps=200.0)
            result, facts = run_scale_out(rig, plan, workers=workers, dispatchers=2, settle_timeout_s=1800)
            result.scenario += f" {facts.calls_per_s:.1f} calls/s peak {facts.max_concurrent_seen} live"
            result.run_s = time.monotonic() - started
            results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--only", default="sigkill,redis,postgres,sigterm,scale")
    args = parser.parse_args()
    wanted = set(args.only.split(","))
    runs: dict[str, Callable[[Path], list[Tally]]] = {
        "sigkill": lambda root: sigkill(root, args.jobs, args.kills),
        "redis": lambda root: redis(root, args.jobs // 2),
        "postgres": lambda root: postgres(root, args.jobs // 2),
        "sigterm": sigterm,
        "scale": lambda root: scale(root, max(100, args.jobs // 8)),
    }
    rows: list[tuple[Tally, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp:
        for name, run in runs.items():
            if name not in wanted:
                continue
            print(f"== {name}", flush=True)
            started = time.monotonic()
            for result in run(Path(tmp)):
                rows.append((result, result.run_s if result.run_s is not None else time.monotonic() - started))
    print()
    print(f"{'scenario':<44} {'jobs':>6} {'faults':>6} {'dialogs':>7} {'dup calls':>9} {'lost':>5}"
          f" {'recover':>8} {'run':>7}")
    for result, elapsed in rows:
        recover = "-" if result.recover_s is None else f"{result.recover_s:.1f}s"
        print(f"{result.scenario:<44} {result.jobs:>6} {result.faults:>6} {result.dialogs:>7}"
              f" {result.duplicate_calls:>9} {result.lost_outcomes:>5} {recover:>8} {elapsed:>6.0f}s")
    bad = [r for r, _ in rows if r.duplicate_calls or r.lost_outcomes]
    if bad:
        print(f"\n{len(bad)} run(s) cost duplicate calls or outcomes: see their details above")


if __name__ == "__main__":
    main()
