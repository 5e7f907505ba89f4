"""Benchmark of call flows with real audio: prints figures beside the same run's plain calls; asserts nothing.

    python bench/bench_flow.py                 # about a minute
    python bench/bench_flow.py --calls 50

baresip (a real SIP phone, Debian's baresip-core) answers every call and
records what it hears. Figures, each next to its reference from this run:

* answer to first prompt audio, p50/p99 (the runtime's 200 OK -> first RTP
  packet of prompt audio sent; target p99 < 300 ms), beside the plain call's
  INVITE -> 200 OK set-up time;
* CPU per call while a prompt plays (this process's CPU seconds over the
  calls), beside the CPU of a plain answered-and-hung-up call;
* how many concurrent calls with audio one process (one pjsua2 endpoint,
  capped at 4 calls by the PyPI wheel) sustains with no gap in the prompt as
  the callee recorded it: each level's recordings must hold the whole tone
  with no quiet 10 ms frame inside it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.flow import parse_flow, validate_flow
from tests.support.baresip import BaresipCallee, loud_span, read_wav, start_baresip_callee, write_tone
from worker.flow_runner import FlowScript, script_factory
from worker.sip import SipAccountConfig, SipAgent


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def agent_for(peer: BaresipCallee) -> SipAgent:
    agent = SipAgent(SipAccountConfig(registrar=peer.address, username="bench", password="unused", register=False),
                     max_calls=4)
    agent.start()
    return agent


def prompt_flow(wav: Path) -> Callable[[], FlowScript]:
    flow = validate_flow(parse_flow({"start": "p", "steps": {"p": {"play": wav.name, "next": "bye"},
                                                             "bye": {"hangup": True}}}))
    return script_factory(flow, {"p": str(wav)})


def plain_calls(peer: BaresipCallee, count: int) -> tuple[list[float], float]:
    """(set-up times, CPU s per call) of answered calls hung up at once: the reference."""
    agent = agent_for(peer)
    try:
        setups: list[float] = []
        cpu0 = time.process_time()
        for _ in range(count):
            result = agent.call(peer.uri(), ring_timeout_s=10, hold_s=0.0)
            if result.answered:
                setups.append(result.setup_s)
        return setups, (time.process_time() - cpu0) / max(1, count)
    finally:
        agent.stop(grace_s=2)


def prompt_calls(peer: BaresipCallee, count: int, wav: Path, seconds: float) -> tuple[list[float], float]:
    """(answer -> first audio times, CPU s per prompt-second) of calls that play ``wav`` then hang up."""
    agent = agent_for(peer)
    factory = prompt_flow(wav)
    try:
        firsts: list[float] = []
        cpu0 = time.process_time()
        for _ in range(count):
            result = agent.call(peer.uri(), ring_timeout_s=10, hold_s=seconds + 5, script_factory=factory)
            first = (result.flow or {}).get("first_audio_s")
            if isinstance(first, float):
                firsts.append(first)
        return firsts, (time.process_time() - cpu0) / max(1, count) / seconds
    finally:
        agent.stop(grace_s=2)


def concurrent_level(workdir: Path, level: int, wav: Path, seconds: float) -> tuple[int, int, list[str]]:
    """``level`` prompt calls at once from one agent, each to a baresip of its own (baresip takes one call
    at a time); returns (recordings with the whole tone and no gap, calls answered)."""
    peers = [start_baresip_callee(workdir / f"level-{level}-{i}") for i in range(level)]
    agent = agent_for(peers[0])
    factory = prompt_flow(wav)
    answered = 0
    try:
        with ThreadPoolExecutor(level) as pool:
            futures = [pool.submit(agent.call, peer.uri(), ring_timeout_s=10, hold_s=seconds + 5,
                                   script_factory=factory) for peer in peers]
            answered = sum(future.result().answered for future in futures)
    finally:
        agent.stop(grace_s=2)
        for peer in peers:
            peer.stop()
    whole = 0
    heard: list[str] = []
    for peer in peers:
        for path in peer.recordings():
            samples, rate = read_wav(path)
            span, quiet = loud_span(samples, rate)
            whole += int(quiet == 0 and span >= seconds - 0.1)
            heard.append(f"{span:.2f} s/{quiet} quiet")
    return whole, answered, heard


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20, help="sequential calls per kind")
    parser.add_argument("--prompt-s", type=float, default=2.0, help="prompt length")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-flow-") as tmp:
        workdir = Path(tmp)
        wav = write_tone(workdir / "tone.wav", args.prompt_s, 1000.0)
        peer = start_baresip_callee(workdir / "seq")
        try:
            setups, plain_cpu = plain_calls(peer, args.calls)
            firsts, prompt_cpu = prompt_calls(peer, args.calls, wav, args.prompt_s)
        finally:
            peer.stop()
        print(f"calls per kind: {args.calls}; prompt: {args.prompt_s:g} s of 1 kHz; callee: baresip on loopback")
        print(f"reference  plain call INVITE->200 OK      p50 {pct(setups, .5) * 1000:7.1f} ms"
              f"   p99 {pct(setups, .99) * 1000:7.1f} ms   ({len(setups)} answered)")
        print(f"flow       answer->first prompt audio     p50 {pct(firsts, .5) * 1000:7.1f} ms"
              f"   p99 {pct(firsts, .99) * 1000:7.1f} ms   ({len(firsts)} measured; target p99 < 300 ms)")
        if firsts:
            print(f"           mean {statistics.mean(firsts) * 1000:.1f} ms")
        print(f"reference  CPU per plain call             {plain_cpu * 1000:7.1f} ms")
        print(f"flow       CPU per call-second of prompt  {prompt_cpu * 1000:7.1f} ms "
              f"({prompt_cpu * 100:.1f}% of one core per call while it plays)")
        sustained = 0
        for level in (1, 2, 3, 4):
            whole, total, heard = concurrent_level(workdir, level, wav, args.prompt_s)
            print(f"concurrent {level}: {total} answered, {whole} recordings hold the whole prompt with no gap"
                  f" (heard: {', '.join(heard) or 'no recording'})")
            if whole == level == total:
                sustained = level
        print(f"one process sustains {sustained} concurrent calls with gapless prompt audio "
              "(the PyPI pjsua2 wheel caps an endpoint at 4 calls)")


if __name__ == "__main__":
    main()
