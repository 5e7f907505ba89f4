"""What the amd and voicemail_drop flow steps cost the SIP thread, beside the bare detector in the same run.

    python3 bench/bench_amd_step.py [--count 48] [--seed 15]

The flow runner feeds the detector on the SIP thread (worker/flow_listen.py),
one 20 ms frame at a time, from the call's audio tap. This runs corpus items
through the whole step machinery — :class:`worker.flow_runner.FlowScript`
with an ``amd`` step whose machine branch is a ``voicemail_drop``, driven by
loop turns of 20 ms holding one frame each, as the tap delivers them — and
prints CPU per frame and per loop turn beside :class:`shared.amd.AmdDetector`
fed the same frames directly (the reference: the detector alone). Also the
verdicts against the labels, and for voicemail greetings how long after the
beep's end the message would start (in audio time; the wire adds the tap's
and the jitter buffer's delay, ~60 ms in tests/integration/test_amd_flow.py).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from shared.amd import AmdDetector, split_frames
from shared.flow import parse_flow, validate_flow
from tests.support.amd_corpus import load_corpus
from worker.flow_runner import FlowScript

FLOW = validate_flow(parse_flow({"start": "d", "steps": {
    "d": {"amd": {}, "branches": {"human": "offer", "machine": "drop"}},
    "offer": {"play": "offer.wav"}, "drop": {"voicemail_drop": True, "play": "msg.wav"}}}))


class _Tap:
    def __init__(self) -> None:
        self.ready: list[bytes] = []

    def read(self) -> list[bytes]:
        out, self.ready = self.ready, []
        return out


class _Media:
    """Enough of MediaControl for the listening steps; play() notes when the message would start."""

    def __init__(self) -> None:
        self.tap = _Tap()
        self.played_at: float | None = None
        self.now = 0.0
        self.first_audio_sent_s = None
        self.early_media = None

    def audio_tap(self, *, send: bool = False) -> _Tap:
        return self.tap

    def play(self, path: str) -> None:
        self.played_at = self.now

    def play_state(self) -> tuple[float, bool]:
        return 0.0, False

    def stop_play(self) -> None: ...

    def hangup(self) -> None: ...


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=48)
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    items = [it for it in load_corpus(args.count, args.seed) if it.wav is not None]
    frames = {it.name: split_frames(it.pcm()) for it in items}

    started, fed = time.process_time(), 0
    for it in items:
        detector = AmdDetector()
        for frame in frames[it.name]:
            fed += 1
            if detector.feed(frame) is not None:
                break
    bare_us = (time.process_time() - started) / max(fed, 1) * 1e6

    right, turns, lags = 0, 0, []
    started = time.process_time()
    for it in items:
        media = _Media()
        script = FlowScript(FLOW, {"offer": "/p/offer.wav", "drop": "/p/msg.wav"})
        script.on_answer(media, 0.0)  # type: ignore[arg-type]
        for index, frame in enumerate(frames[it.name]):
            media.now = (index + 1) * 0.02
            media.tap.ready.append(frame)
            script.on_tick(media.now)
            turns += 1
            if media.played_at is not None:
                break
        amd = script.report().get("amd")
        decision = amd.get("decision") if isinstance(amd, dict) else None
        right += decision == it.label or (decision == "notsure" and it.label == "human")
        if it.kind == "voicemail" and decision == "machine" and media.played_at is not None:
            lags.append(media.played_at - (it.meta["beep_at_s"] + it.meta["beep_s"]))
    step_us = (time.process_time() - started) / max(turns, 1) * 1e6

    print(f"items: {len(items)} (seed {args.seed}); verdicts matching the label (notsure counted for humans): "
          f"{right}/{len(items)}")
    print(f"CPU per 20 ms loop turn, amd/voicemail_drop steps in the flow runner: {step_us:.0f} us")
    print(f"CPU per frame, the bare detector on the same frames (reference):     {bare_us:.0f} us")
    if lags:
        print(f"message start after the beep's end (audio time), p50 / max: {statistics.median(lags) * 1000:.0f} / "
              f"{max(lags) * 1000:.0f} ms over {len(lags)} greetings; min {min(lags) * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
