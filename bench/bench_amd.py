"""Answering-machine detection accuracy on the generated corpus, beside plain app_amd in the same run.

    python3 bench/bench_amd.py [--count 320] [--seed 15]

Makes (or reuses) the corpus of ``scripts/make-amd-corpus`` and runs every
item's post-answer audio, in 20 ms frames, through :class:`shared.amd.AmdDetector`
twice: with the shipped defaults and with :meth:`AmdSettings.asterisk`
(app_amd's state machine and defaults: the reference). Prints per detector:

* human recall (humans decided HUMAN) and humans called machines (target <= 1%);
* machine recall (voicemail greetings and carrier announcements decided
  MACHINE; target >= 95%);
* NOTSURE share, decision time p50/p90 in seconds of audio (target p50 <= 2.5 s),
  and CPU per 20 ms frame;

then the beep listener over whole files (beeps found after each greeting,
false beeps anywhere else), then the early-media verdicts (announcement recall on 183 announcements, and
how many ringback-only early media were wrongly called announcements).
"""

from __future__ import annotations

import argparse
import collections
import sys
import time

import numpy as np

from shared.amd import AmdResult, AmdSettings, Decision, beep_listener, detect, split_frames
from shared.amd_early import EarlyMedia, classify_early_media
from tests.support.amd_corpus import CorpusItem, load_corpus


def run(items: list[CorpusItem], frames: dict[str, list[bytes]], settings: AmdSettings) -> dict[str, float]:
    counts: collections.Counter[tuple[str, Decision]] = collections.Counter()
    times: list[float] = []
    fed = 0
    misses: list[str] = []
    started = time.process_time()
    for item in items:
        result: AmdResult = detect(frames[item.name], settings)
        fed += round(result.decided_at_s / 0.02)
        counts[(item.label, result.decision)] += 1
        times.append(result.decided_at_s)
        wrong = (item.label == "human") == (result.decision == Decision.MACHINE)
        if wrong and result.decision != Decision.NOTSURE:
            misses.append(f"{item.name}:{result.reason.value}")
    cpu = time.process_time() - started
    humans = sum(v for (label, _), v in counts.items() if label == "human")
    machines = sum(v for (label, _), v in counts.items() if label == "machine")
    notsure = sum(v for (_, d), v in counts.items() if d == Decision.NOTSURE)
    return {
        "human_recall": counts[("human", Decision.HUMAN)] / humans,
        "human_as_machine": counts[("human", Decision.MACHINE)] / humans,
        "machine_recall": counts[("machine", Decision.MACHINE)] / machines,
        "notsure": notsure / len(items),
        "p50": float(np.percentile(times, 50)),
        "p90": float(np.percentile(times, 90)),
        "us_per_frame": cpu / max(1, fed) * 1e6,
        "humans": humans,
        "machines": machines,
        "misses": " ".join(misses[:8]),
    }


def beeps(items: list[CorpusItem], frames: dict[str, list[bytes]]) -> None:
    """The beep listener over every whole file: found after the greeting, or a false beep anywhere else."""
    delays: list[float] = []
    missed = false = 0
    for item in items:
        listener = beep_listener()
        hit = next((h for h in map(listener.feed, frames[item.name]) if h is not None), None)
        beep_at = item.meta.get("beep_at_s")
        if hit is None:
            missed += beep_at is not None
        elif beep_at is None or hit[0] < beep_at:
            false += 1
        else:
            delays.append(hit[0] - beep_at)
    voicemail = sum(1 for it in items if "beep_at_s" in it.meta)
    print(f"beeps (whole files): found {len(delays)}/{voicemail}, missed {missed}, false beeps {false}"
          f" in {len(items)} files; found {np.percentile(delays, 50):.3f} s / {np.percentile(delays, 90):.3f} s"
          " (p50/p90) after the beep starts")


def main() -> int:
    parser = argparse.ArgumentParser(description="AMD accuracy bench")
    parser.add_argument("--count", type=int, default=320)
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    corpus = load_corpus(args.count, args.seed)
    answered = [it for it in corpus if it.wav is not None]
    frames = {it.name: split_frames(it.pcm()) for it in answered}
    kinds = collections.Counter(it.kind for it in corpus)
    print(f"corpus: {len(corpus)} items (seed {args.seed}): " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    print(f"{'detector':<22}{'human rec':>10}{'human->mach':>12}{'machine rec':>12}{'notsure':>9}"
          f"{'p50 s':>7}{'p90 s':>7}{'us/frame':>9}")
    ok = True
    for name, settings in (("sip-dialer defaults", AmdSettings()), ("app_amd (reference)", AmdSettings.asterisk())):
        r = run(answered, frames, settings)
        print(f"{name:<22}{r['human_recall']:>10.1%}{r['human_as_machine']:>12.1%}{r['machine_recall']:>12.1%}"
              f"{r['notsure']:>9.1%}{r['p50']:>7.2f}{r['p90']:>7.2f}{r['us_per_frame']:>9.0f}")
        if r["misses"]:
            print(f"{'':<22}wrong: {r['misses']}")
        if name.startswith("sip-dialer"):
            ok = r["human_as_machine"] <= 0.01 and r["machine_recall"] >= 0.95 and r["p50"] <= 2.5
            print(f"{'':<22}({r['humans']:.0f} humans, {r['machines']:.0f} machines)")
    print(f"targets (humans->machine <= 1%, machine recall >= 95%, p50 <= 2.5 s): {'met' if ok else 'NOT met'}")
    beeps(answered, frames)
    early = [it for it in corpus if it.early_wav is not None]
    verdicts = {it.name: classify_early_media(split_frames(it.early_pcm())).kind for it in early}
    announcements = [it for it in early if it.kind == "carrier_early"]
    rings = [it for it in early if it.kind != "carrier_early"]
    found = sum(verdicts[it.name] == EarlyMedia.ANNOUNCEMENT for it in announcements)
    false = sum(verdicts[it.name] == EarlyMedia.ANNOUNCEMENT for it in rings)
    print(f"early media: announcements recognised {found}/{len(announcements)}, "
          f"ringback-only called announcement {false}/{len(rings)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
