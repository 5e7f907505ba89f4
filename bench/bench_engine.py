"""The two pjsua2 engines side by side in one run: the PyPI wheel and the one scripts/build-engine builds.

    python bench/bench_engine.py                      # held calls: 32 on the wheel, 2,000 on the built engine
    python bench/bench_engine.py --short              # 8 and 200: a minute, fine while others run tests
    python bench/bench_engine.py --built DIR          # the built engine installed in DIR (else from the cache)

Figures, per engine, all against one sipp ``answer_fast`` UAS on loopback:

* answered calls held live at once on this host, the processes that took,
  and RSS per live call (whole processes, and the increase over idle);
* registrations per host: one per process, so the PBX sees that many contacts;
* call starts per second one process sustains before anything fails, and what
  fails first: the pace is raised step by step, each step in a fresh process
  (the wheel aborts the whole process when its ioqueue runs out), each call
  hung up as soon as it is answered, until a call is not answered or the
  process dies.

The reference printed beside them is sipp's own UAC against the same UAS.
Each engine is loaded in child processes (one pjsua2 per process); this
script itself imports neither.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.engine import built_env, wheel_env  # noqa: E402
from tests.support.sipp import HOST, SIPP, SippPeer, free_port, start_sipp_uas  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------- child side (one engine loaded)
def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 1e6


def _emit(record: dict[str, object]) -> None:
    print(json.dumps(record), flush=True)


def child_hold(registrar: str, calls: int, pace: float, index: int) -> None:
    """Register, place ``calls`` held calls, report once all are live, hang up when stdin says so."""
    from worker.sip import SipAccountConfig, SipAgent
    from worker.sip.engine import loaded

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 256 + 4 * calls)), hard))
    agent = SipAgent(SipAccountConfig(registrar=registrar, username=f"bench{index}", password="not-a-real-secret"),
                     max_calls=calls, max_call_starts_per_s=pace, max_waiting=calls, slot_wait_s=120)
    registration = agent.start()
    idle = _rss_mb()
    futures = [agent.place_call(agent.uri_for(f"+86139{index:02d}{i:06d}"), hold_s=600) for i in range(calls)]
    deadline = time.monotonic() + 60 + calls / pace
    while agent.live_calls < calls and time.monotonic() < deadline and not any(f.done() for f in futures):
        time.sleep(0.05)  # another thread's progress: there is no event to wait on
    time.sleep(1.0)  # let the last calls' media settle before reading RSS
    _emit({"live": agent.live_calls, "idle_mb": idle, "rss_mb": _rss_mb(), "kind": loaded().kind,
           "registered": bool(registration and registration.registered)})
    sys.stdin.readline()
    agent.stop(grace_s=0)
    answered = sum(1 for f in futures if f.done() and f.exception() is None and f.result().answered)
    _emit({"answered": answered})


def child_pace(registrar: str, pace: float, seconds: float) -> None:
    """Start calls at ``pace`` for ``seconds``; report starts/s and the first failure, if any."""
    import worker.sip.agent as agent_module
    from worker.sip import SipAccountConfig, SipAgent
    from worker.sip.engine import loaded

    agent_module.MAX_SAFE_STARTS_PER_S = 10_000.0  # find the ceiling instead of refusing past it
    total = int(pace * seconds)
    agent = SipAgent(SipAccountConfig(registrar=registrar, username="pace", password="p", register=False),
                     max_calls=loaded().usable_calls,
                     max_call_starts_per_s=pace, max_waiting=total, slot_wait_s=60)
    agent.start()
    started = time.monotonic()
    futures = [agent.place_call(agent.uri_for(f"+86139{i:08d}"), hold_s=0.0) for i in range(total)]
    results = [f.result(timeout=120) for f in futures]
    elapsed = time.monotonic() - started
    failed = [r for r in results if not r.answered]
    first = failed[0] if failed else None
    _emit({"starts_per_s": total / elapsed, "failed": len(failed),
           "first_failure": None if first is None else f"{first.status} {first.reason} {first.error or ''}".strip()})
    agent.stop(grace_s=0)


# ---------------------------------------------------------------- parent side
def spawn(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, __file__, "--child", *args], env=env, cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def hold(env: dict[str, str], peer: SippPeer, processes: int, calls: int, pace: float) -> dict[str, float]:
    children = [spawn(env, "hold", peer.address, str(calls), str(pace), str(i)) for i in range(processes)]
    reports = []
    for child in children:
        assert child.stdout is not None
        line = child.stdout.readline()
        reports.append(json.loads(line) if line else {"live": 0, "idle_mb": 0, "rss_mb": 0, "registered": False})
    for child in children:
        assert child.stdin is not None
        child.stdin.write("stop\n")
        child.stdin.flush()
    answered = 0
    for child in children:
        assert child.stdout is not None
        line = child.stdout.readline()
        answered += int(json.loads(line)["answered"]) if line else 0
        child.wait(timeout=120)
    live = sum(int(r["live"]) for r in reports)
    rss = sum(float(r["rss_mb"]) for r in reports)
    idle = sum(float(r["idle_mb"]) for r in reports)
    return {"live": live, "answered": answered, "processes": processes,
            "registrations": sum(1 for r in reports if r["registered"]),
            "rss_mb": rss, "mb_per_call": rss / max(1, live),
            "kb_per_call_over_idle": (rss - idle) * 1000 / max(1, live)}


def pace_ceiling(env: dict[str, str], peer: SippPeer, steps: list[float], seconds: float) -> tuple[float, str]:
    best, what = 0.0, f"none: nothing failed up to the last step, {steps[-1]:g}/s asked"
    for pace in steps:
        child = spawn(env, "pace", peer.address, str(pace), str(seconds))
        out, _ = child.communicate(timeout=300)
        if child.returncode != 0 or not out.strip():
            return best, f"at {pace:g}/s the process died (exit {child.returncode}: pjsua abort)"
        report = json.loads(out.strip().splitlines()[-1])
        if report["failed"]:
            return best, f"at {pace:g}/s: {report['failed']} calls not answered, first: {report['first_failure']}"
        best = max(best, float(report["starts_per_s"]))
    return best, what


def raw_sipp_rate(peer: SippPeer, calls: int, workdir: Path) -> float:
    cmd = [SIPP, peer.address, "-sn", "uac", "-i", HOST, "-p", str(free_port()), "-mi", HOST, "-ci", HOST,
           "-m", str(calls), "-r", "2000", "-l", "200", "-d", "0", "-nostdin", "-timeout", "60s", "-skip_rlimit"]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return calls / (time.perf_counter() - start)


def built_dir(given: str | None, workdir: Path) -> Path:
    if given or os.environ.get("DIALER_TEST_ENGINE_PATH"):
        return Path(given or os.environ["DIALER_TEST_ENGINE_PATH"])
    target = workdir / "engine"
    subprocess.run(["bash", str(ROOT / "scripts" / "build-engine"), "--cached", "--target", str(target)],
                   check=True, stdout=subprocess.DEVNULL)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--built", help="directory holding the built engine (default: from the build cache)")
    parser.add_argument("--short", action="store_true", help="small figures, about a minute")
    parser.add_argument("--no-pace", action="store_true", help="skip the call-start pace steps")
    parser.add_argument("--built-processes", type=int, default=4, help="processes of 500 held calls (default 4)")
    args = parser.parse_args()
    if args.child:
        kind, registrar, *rest = args.child
        if kind == "hold":
            child_hold(registrar, int(rest[0]), float(rest[1]), int(rest[2]))
        else:
            child_pace(registrar, float(rest[0]), float(rest[1]))
        return
    workdir = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))  # inherited by sipp and the engine processes
    peer = start_sipp_uas("answer_fast", workdir, trace=False, timeout_s=1800)
    try:
        engines = {"wheel": wheel_env(), "built": built_env(built_dir(args.built, workdir))}
        shapes = {"wheel": (2, 4, 40.0), "built": (1, 200, 150.0)} if args.short else \
                 {"wheel": (8, 4, 40.0), "built": (args.built_processes, 500, 150.0)}
        steps = {"wheel": [40.0, 55.0, 100.0, 200.0], "built": [100.0, 200.0, 300.0, 400.0, 600.0, 800.0]}
        seconds = 2.0 if args.short else 4.0
        print(f"reference: raw sipp UAC->UAS on loopback, {raw_sipp_rate(peer, 2000, workdir):.0f} calls/s")
        for name, env in engines.items():
            info = subprocess.run([sys.executable, "-m", "worker.sip.engine"], env=env, cwd=ROOT, text=True,
                                  capture_output=True, check=True).stdout.strip().splitlines()[-1]
            print(f"\n{name}: {info}")
            processes, calls, pace = shapes[name]
            held = hold(env, peer, processes, calls, pace)
            print(f"  held live at once: {held['live']:.0f} calls ({held['answered']:.0f} answered in all)"
                  f" in {held['processes']:.0f} processes"
                  f" ({held['registrations']:.0f} registrations = contacts at the PBX)")
            print(f"  RSS: {held['rss_mb']:.0f} MB in all, {held['mb_per_call']:.2f} MB per live call counting whole"
                  f" processes, {held['kb_per_call_over_idle']:.0f} kB per call over idle")
            if args.no_pace:
                continue
            best, what = pace_ceiling(env, peer, steps[name], seconds)
            print(f"  call starts/s one process sustained (measured, every call answered): {best:.0f}")
            print(f"  first failure: {what}")
    finally:
        peer.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
