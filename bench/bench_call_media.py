"""Benchmark of prompt audio on answered calls, against baresip on loopback; prints figures, asserts nothing.

    python bench/bench_call_media.py               # about a minute
    python bench/bench_call_media.py --calls 40

Figures, each beside the same run's plain-call reference (calls answered by
the same baresip and held for as long as the prompt lasts, no script):
time from 200 OK to the first RTP packet of prompt audio (first_audio_sent_s)
p50/p99 beside INVITE->200 setup time; CPU per call while a prompt plays
beside CPU per held call; and, at 1, 2 and 4 concurrent calls (the wheel's
cap per process), how many prompts baresip received with a silent gap inside
the tone (a gap is a 10 ms frame of silence between the first and the last
loud frame).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.answer_scripts import ScriptedTest
from tests.support.baresip import BaresipCallee, loud_span, read_wav, start_baresip_callee, write_tone
from worker.sip import CallResult, SipAccountConfig, SipAgent

PROMPT_S = 1.5


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(agent: SipAgent, uri: str, calls: int, concurrency: int, make: Callable[[], ScriptedTest] | None
        ) -> tuple[list[CallResult], float]:
    """Place ``calls`` calls, ``concurrency`` at a time; returns the results and the process CPU spent."""
    results: list[CallResult] = []
    lock = threading.Lock()
    counter = iter(range(calls))

    def worker() -> None:
        for _ in counter:
            if make is None:
                result = agent.call(uri, hold_s=PROMPT_S, timeout_s=60)
            else:
                result = agent.call(uri, timeout_s=60, script_factory=make)
            with lock:
                results.append(result)

    start = cpu_s()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, cpu_s() - start


def gaps(callee: BaresipCallee, since: int) -> tuple[int, int]:
    """(prompts received with a gap, prompts received) among recordings after the first ``since``."""
    callee.stop()  # baresip writes each WAV's sizes when the call's audio closes; stopping flushes all
    with_gap = total = 0
    for wav in callee.recordings()[since:]:
        samples, rate = read_wav(wav)
        span, quiet = loud_span(samples, rate)
        if span > 0:
            total += 1
            with_gap += quiet > 0
    return with_gap, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=16, help="calls per phase")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-media-"))
    prompt = write_tone(work / "prompt.wav", PROMPT_S, 1000.0)

    def script() -> ScriptedTest:
        return ScriptedTest(on_answer_do=lambda ctl: ctl.play(str(prompt)),
                            until=lambda s: s.ctl is not None and s.ctl.play_state()[1])

    print(f"prompt {PROMPT_S} s of 1 kHz; callee baresip on loopback; {args.calls} calls per phase")
    for concurrency in (1, 2, 4):
        callee = start_baresip_callee(work / f"baresip-{concurrency}")
        agent = SipAgent(SipAccountConfig(registrar=callee.address, username="bench", password="unused",
                                          register=False), max_calls=4)
        agent.start()
        try:
            plain, plain_cpu = run(agent, callee.uri(), args.calls, concurrency, None)
            before = len(callee.recordings())
            flows, flow_cpu = run(agent, callee.uri(), args.calls, concurrency, script)
        finally:
            agent.stop(grace_s=0)
        with_gap, received = gaps(callee, before)
        setup = [r.setup_s for r in plain if r.answered]
        first = [float(r.flow["first_audio_sent_s"]) for r in flows  # type: ignore[arg-type,index]
                 if r.flow is not None and r.flow.get("first_audio_sent_s") is not None]
        print(f"\n{concurrency} concurrent call(s):")
        print(f"  reference INVITE->200 setup     p50 {statistics.median(setup) * 1000:6.1f} ms  "
              f"p99 {pct(setup, 0.99) * 1000:6.1f} ms  ({len(setup)} answered)")
        if first:
            print(f"  200 OK -> first prompt RTP      p50 {statistics.median(first) * 1000:6.1f} ms  "
                  f"p99 {pct(first, 0.99) * 1000:6.1f} ms  ({len(first)} measured; target p99 < 300 ms)")
        print(f"  CPU per call: prompt {flow_cpu / max(1, len(flows)) * 1000:6.1f} ms  "
              f"held call (reference) {plain_cpu / max(1, len(plain)) * 1000:6.1f} ms")
        print(f"  prompts with a gap as baresip received them: {with_gap} of {received} checked"
              " (baresip names its WAVs by the second: calls starting in the same second share one)")


if __name__ == "__main__":
    main()
