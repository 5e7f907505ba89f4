"""What the audio tap costs: reading and writing ``frame.buf``, and the round trip through RTP.

    python3 bench/bench_audio_tap.py [--seconds 8]

1. Per 320-byte frame, the obvious ways against the tap's (same run, same
   machine): ``bytes(frame.buf)`` vs :func:`worker.sip.audio_tap.vector_bytes`
   to read, ``pj.ByteVector(data)`` vs :func:`~worker.sip.audio_tap.to_byte_vector`
   to build an outgoing frame, and assigning a ready ByteVector to ``frame.buf``
   (all the send callback does).
2. The round trip of a 20 ms burst written to a sending tap, echoed by sipp
   (``-rtp_echo``) and heard back by the same tap: our send queue, one bridge
   tick, PCMU, loopback UDP, pjmedia's jitter buffer, one bridge tick, the
   reader's poll. Runs tests/support/tap_harness.py in a subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path

import numpy as np
import pjsua2 as pj

from tests.support.sipp import SCENARIO_DIR, SIPP, free_port
from worker.sip.audio_tap import FRAME_BYTES, to_byte_vector, vector_bytes

ROOT = Path(__file__).resolve().parents[1]


def per_call_us(fn: object, number: int) -> float:
    return timeit.timeit(fn, number=number) / number * 1e6  # type: ignore[arg-type]


def micro() -> None:
    data = bytes(range(256)) + bytes(FRAME_BYTES - 256)
    frame = pj.MediaFrame()
    frame.buf = pj.ByteVector(data)
    frame.size = FRAME_BYTES
    ready = to_byte_vector(data)

    def assign() -> None:
        frame.buf = ready

    print("per 320-byte frame           reference            the tap's way")
    print(f"read frame.buf               bytes(): {per_call_us(lambda: bytes(frame.buf), 300):7.1f} us"
          f"    vector_bytes(): {per_call_us(lambda: vector_bytes(frame.buf), 5000):6.1f} us")
    print(f"build an outgoing ByteVector ByteVector(bytes): {per_call_us(lambda: pj.ByteVector(data), 2000):5.1f} us"
          f" to_byte_vector(): {per_call_us(lambda: to_byte_vector(data), 5000):6.1f} us")
    print(f"send callback: frame.buf = ready vector {per_call_us(assign, 5000):.1f} us")


def round_trip(seconds: float) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-tap-") as tmp:
        sip_port, media_port = free_port(), free_port()
        sipp = subprocess.Popen(
            [SIPP, "-sf", str(SCENARIO_DIR / "answer_fast.xml"), "-i", "127.0.0.1", "-p", str(sip_port),
             "-mi", "127.0.0.1", "-mp", str(media_port), "-rtp_echo", "-nostdin", "-skip_rlimit",
             "-key", "reg_expires", "300", "-timeout", "60s"],
            cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            out = Path(tmp) / "echo.json"
            subprocess.run(
                [sys.executable, "-m", "tests.support.tap_harness", "--uri", f"sip:echo@127.0.0.1:{sip_port}",
                 "--mode", "echo", "--seconds", str(seconds), "--out", str(out)],
                cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True, timeout=seconds + 60,
            )
            result = json.loads(out.read_text())
        finally:
            sipp.terminate()
            sipp.wait()
    rtt = np.array(result["rtt_ms"])
    print(f"round trip tap -> RTP -> sipp echo -> jitter buffer -> tap: {rtt.size} bursts,"
          f" p50 {np.percentile(rtt, 50):.1f} ms, p90 {np.percentile(rtt, 90):.1f} ms, max {rtt.max():.1f} ms;"
          f" counters {result['stats']}")
    print("the tap's own share is at most one 20 ms bridge tick each way (plus the reader's poll)")


def main() -> int:
    parser = argparse.ArgumentParser(description="audio tap costs")
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    micro()
    round_trip(args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
