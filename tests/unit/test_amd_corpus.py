"""The detector on the first items of the generated corpus (speech by espeak-ng, telephone audio by sox)."""

from __future__ import annotations

import json
import subprocess
import sys
import wave

import pytest

from shared.amd import Decision, beep_listener, detect, split_frames
from shared.amd_early import EarlyMedia, classify_early_media
from tests.support.amd_corpus import SCRIPT, CorpusItem, load_corpus

COUNT = 24  # three rounds of every kind; a few seconds to make once, then cached


@pytest.fixture(scope="module")
def corpus() -> list[CorpusItem]:
    return load_corpus(COUNT)


def test_humans_are_never_called_machines(corpus: list[CorpusItem]) -> None:
    """Every person in the subset is HUMAN (or NOTSURE when they said nothing), never MACHINE."""
    for item in corpus:
        if item.label == "human":
            result = detect(split_frames(item.pcm()))
            expected = {Decision.NOTSURE} if item.meta["dead_air"] else {Decision.HUMAN}
            assert result.decision in expected, (item.name, item.meta["text"], result)


def test_greetings_and_announcements_are_machines(corpus: list[CorpusItem]) -> None:
    """Every voicemail greeting and post-answer carrier announcement in the subset is MACHINE within 5 s."""
    for item in corpus:
        if item.label == "machine" and item.wav is not None:
            result = detect(split_frames(item.pcm()))
            assert result.decision == Decision.MACHINE, (item.name, item.meta["text"], result)
            assert result.decided_at_s < 5.0


def test_beeps_are_heard_after_greetings_and_nowhere_else(corpus: list[CorpusItem]) -> None:
    """The beep listener finds each voicemail beep within 0.3 s of its start, and no beep in any other audio."""
    for item in corpus:
        if item.wav is None:
            continue
        listener = beep_listener()
        hit = next((h for h in map(listener.feed, split_frames(item.pcm())) if h is not None), None)
        if item.kind == "voicemail":
            assert hit is not None, item.name
            assert 0 < hit[0] - item.meta["beep_at_s"] < 0.3, (item.name, hit)
            assert abs(hit[1] - item.meta["beep_hz"]) < 10
        else:
            assert hit is None, (item.name, item.meta["text"], hit)


def test_early_media_verdicts(corpus: list[CorpusItem]) -> None:
    """183 announcements are recognised; ringback-only early media never is."""
    for item in corpus:
        if item.early_wav is not None:
            verdict = classify_early_media(split_frames(item.early_pcm()))
            assert (verdict.kind == EarlyMedia.ANNOUNCEMENT) == (item.kind == "carrier_early"), (item.name, verdict)


def test_corpus_is_deterministic_telephone_audio(tmp_path: object, corpus: list[CorpusItem]) -> None:
    """The same seed makes byte-identical items; every file is 8 kHz mono 16-bit."""
    out = tmp_path / "again"  # type: ignore[operator]
    subprocess.run([sys.executable, str(SCRIPT), "--count", "4", "--out", str(out)], check=True, capture_output=True)
    manifest = json.loads((out / "manifest.json").read_text())
    for fresh, cached in zip(manifest["items"], corpus[:4], strict=True):
        assert fresh["name"] == cached.name
        for field in ("wav", "early_wav"):
            if field in fresh:
                path = cached.wav if field == "wav" else cached.early_wav
                assert path is not None and (out / fresh[field]).read_bytes() == path.read_bytes()
                with wave.open(str(path)) as w:
                    assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
