"""A raw pjsua2 endpoint with an audio tap, run as a subprocess by the tap and AMD integration tests.

    python3 -m tests.support.tap_harness --uri sip:callee@127.0.0.1:PORT --mode tone --out result.json

Keeps the SIP-thread discipline of :mod:`worker.sip.runtime`: the main thread
creates the Endpoint (``threadCnt=0``, ``mainThreadOnly``, null sound device,
through :mod:`worker.sip.pj_objects`), runs ``libHandleEvents`` and is the only
thread that touches pjsua2, including every tap ``attach``/``detach``. A
second thread plays the consumer: it only calls the tap's thread-safe
``read_timed`` (as the AMD step or the AI bridge will), and in ``churn`` mode a
third thread burns CPU to reproduce the load under which a port freed by
refcount crashed.

Modes:

* ``tone``: one tap for the call's life; the result carries every received
  frame's arrival gap and the received PCM (hex) for the test to analyse;
* ``churn``: ``--ports`` taps attached and detached one after another on the
  live call, each for a few loop turns, under a CPU-busy thread;
* ``amd``: the consumer feeds an :class:`~shared.amd.AmdDetector` and the
  result carries its decision;
* ``echo``: a sending tap writes a burst every 400 ms to a callee that
  echoes RTP (sipp ``-rtp_echo``) and times each one's return.

Runs in its own process because pjsua allows one Endpoint per process and a
crash here must fail the test, not kill pytest.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import threading
import time
from typing import Any

import numpy as np

from shared.amd import AmdDetector, AmdResult
from worker.sip import pj_objects as pjo
from worker.sip.audio_tap import AudioTap
from worker.sip.config import SipAccountConfig
from worker.sip.responses import ResponseLog
from worker.sip.trace import CallTrace


class _MediaCall(pjo.PjCall):
    """PjCall that also records when its audio media became active (the tap attaches after that)."""

    media_ready = False

    def onCallMediaState(self, prm: Any) -> None:
        try:
            self.media_ready = True
        except Exception:  # never let an exception escape a director callback
            pass


class Consumer(threading.Thread):
    """Another thread reading the tap as the AMD step will: poll, collect, optionally detect."""

    def __init__(self, amd: bool) -> None:
        super().__init__(name="tap-consumer", daemon=True)
        self.tap: AudioTap | None = None
        self.frames: list[tuple[float, bytes]] = []
        self.detector = AmdDetector() if amd else None
        self.result: AmdResult | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.02):
            self.drain()
        self.drain()  # whatever arrived before the tap was detached

    def drain(self) -> None:
        tap = self.tap
        if tap is None:
            return
        for arrived, frame in tap.read_timed():
            self.frames.append((arrived, frame))
            if self.detector is not None and self.result is None:
                self.result = self.detector.feed(frame)


def _burn(stop: threading.Event) -> None:
    x = 0
    while not stop.is_set():
        x = (x * 31 + 7) % 1_000_003


def _echo(ep: Any, call: _MediaCall, media: Any, seconds: float) -> dict[str, Any]:
    """Send a 1 kHz burst through the tap every 400 ms to an RTP-echoing callee; time each one's return.

    Round trip = our send queue + encoding + loopback UDP + the callee's echo
    + pjmedia's jitter buffer + one bridge tick + the reader's poll; the
    reading is done here on the SIP thread between libHandleEvents turns.
    """
    tap = AudioTap(name="echo")
    tap.attach(media, send=True)
    t = np.arange(160) / 8000
    burst = (12000 * np.sin(2 * np.pi * 1000 * t)).astype("<i2").tobytes()
    rtts: list[float] = []
    sent_at: float | None = None
    next_send = time.monotonic() + 0.5
    end = time.monotonic() + seconds
    while time.monotonic() < end and not call.trace.ended:
        ep.libHandleEvents(5)
        now = time.monotonic()
        if sent_at is None and now >= next_send:
            tap.read()  # forget what came before
            tap.write(burst)
            sent_at = now
        for arrived, frame in tap.read_timed():
            if sent_at is not None and np.abs(np.frombuffer(frame, dtype="<i2")).mean() > 2000:
                rtts.append((arrived - sent_at) * 1000)
                sent_at = None
                next_send = now + 0.4
    tap.detach()
    return {"rtt_ms": rtts, "stats": tap.stats()}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uri", required=True)
    parser.add_argument("--mode", choices=("tone", "churn", "amd", "echo"), required=True)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--ports", type=int, default=200)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    host_port = args.uri.split("@", 1)[1]
    account = SipAccountConfig(registrar=host_port, username="tap", password="unused", register=False)
    ep, _ = pjo.open_endpoint(account, max_calls=1, log_level=0, responses=None)
    result: dict[str, Any] = {"mode": args.mode}
    try:
        acc = pjo.PjAccount([], ResponseLog())
        acc.create(pjo.account_config(account))
        call = _MediaCall(acc, CallTrace(args.uri, pjo.utcnow()), ResponseLog())
        call.makeCall(args.uri, pjo.new_call_param())
        result.update(_drive(ep, call, args))
        del call
        acc.shutdown()
        del acc
        gc.collect()
    finally:
        ep.libDestroy(pjo.DESTROY_NO_RX_MSG)
    with open(args.out, "w") as fh:
        json.dump(result, fh)
    return 0


def _drive(ep: Any, call: _MediaCall, args: argparse.Namespace) -> dict[str, Any]:
    """The SIP loop: attach when media is up, run the mode, detach, hang up, wait for DISCONNECTED."""
    consumer = Consumer(amd=args.mode == "amd")
    consumer.start()
    deadline = time.monotonic() + 15.0
    while not call.media_ready and not call.trace.ended and time.monotonic() < deadline:
        ep.libHandleEvents(10)
    if not call.media_ready:
        return {"error": f"no media: {call.trace.result()}"}
    media = call.getAudioMedia(-1)
    if args.mode == "echo":
        out = _echo(ep, call, media, args.seconds)
    elif args.mode == "churn":
        out = _churn(ep, media, consumer, args.ports)
    else:
        out = _listen(ep, call, media, consumer, args)
    consumer.stop.set()
    consumer.join()
    pjo.hangup(call)
    deadline = time.monotonic() + 10.0
    while not call.trace.ended and time.monotonic() < deadline:
        ep.libHandleEvents(10)
    del media
    frames = consumer.frames
    out["frames"] = len(frames)
    out["gaps_ms"] = [round((b[0] - a[0]) * 1000, 2) for a, b in itertools.pairwise(frames)]
    if args.mode == "tone":
        out["pcm_hex"] = b"".join(f for _, f in frames).hex()
    if consumer.detector is not None:
        final = consumer.result or consumer.detector.finish()
        out["amd"] = final.to_json()
    return out


def _churn(ep: Any, media: Any, consumer: Consumer, ports: int) -> dict[str, Any]:
    """Attach and detach ``ports`` taps in turn on the live call while another thread burns CPU."""
    burn_stop = threading.Event()
    burner = threading.Thread(target=_burn, args=(burn_stop,), daemon=True)
    burner.start()
    per_port: list[int] = []
    for i in range(ports):
        tap = AudioTap(name=f"churn{i}")
        tap.attach(media, send=i % 2 == 1)
        consumer.tap = tap
        tap.write(bytes(640))
        for _ in range(3):
            ep.libHandleEvents(10)
        tap.detach()
        consumer.drain()  # frames of a detached tap are still readable, never lost
        consumer.tap = None
        per_port.append(tap.stats()["rx_frames"])
        del tap
    burn_stop.set()
    burner.join()
    return {"rx_frames_per_port": per_port}


def _listen(ep: Any, call: _MediaCall, media: Any, consumer: Consumer, args: argparse.Namespace) -> dict[str, Any]:
    """One tap for the call's life (``tone``: rebound half-way, as after a re-INVITE; ``amd``: until decided)."""
    out: dict[str, Any] = {}
    tap = AudioTap(name="tap")
    tap.attach(media)
    consumer.tap = tap
    attached_at = time.monotonic()
    end = attached_at + args.seconds
    rebind_at = attached_at + args.seconds / 2 if args.mode == "tone" else float("inf")
    while time.monotonic() < end and not call.trace.ended:
        ep.libHandleEvents(10)
        if consumer.result is not None:
            break
        if time.monotonic() >= rebind_at:  # what a re-INVITE makes the flow do: follow the new AudioMedia
            rebind_at = float("inf")
            tap.rebind(call.getAudioMedia(-1))
            out["rx_frames_at_rebind"] = tap.stats()["rx_frames"]
    tap.detach()
    consumer.stop.set()
    consumer.join()
    out["stats"] = tap.stats()
    return out


if __name__ == "__main__":
    raise SystemExit(main())
