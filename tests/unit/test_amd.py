"""The answering-machine detector on synthetic audio: its rules one by one, and that it never crashes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.amd import AmdDetector, AmdSettings, Decision, Reason, detect, split_frames
from shared.amd_beep import NoiseFloor, ToneTracker, dominant_tone, pcm16
from shared.amd_early import EarlyMedia, classify_early_media

RATE = 8000
_rng = np.random.default_rng(15)


def silence(s: float, noise: float = 0.0, rate: int = RATE) -> np.ndarray:
    return _rng.standard_normal(round(s * rate)) * noise


def syllables(s: float, level: float = 3000.0, rate: int = RATE, on_ms: int = 180, off_ms: int = 70) -> np.ndarray:
    """Speech-like: bursts of noise (not tonal) with short gaps, like syllables."""
    out = np.zeros(round(s * rate))
    period = (on_ms + off_ms) * rate // 1000
    for start in range(0, out.size, period):
        n = min(on_ms * rate // 1000, out.size - start)
        out[start : start + n] = _rng.standard_normal(n) * level
    return out


def tone(hz: float, s: float, level: float = 8000.0, rate: int = RATE) -> np.ndarray:
    return level * np.sin(2 * np.pi * hz * np.arange(round(s * rate)) / rate)


def pcm(*parts: np.ndarray) -> bytes:
    return np.clip(np.concatenate(parts), -32768, 32767).astype("<i2").tobytes()


def run(audio: bytes, amd: AmdSettings | None = None, rate: int = RATE) -> tuple[Decision, Reason, float]:
    result = detect(list(split_frames(audio, rate)), amd, rate)
    return result.decision, result.reason, result.decided_at_s


CASES = [
    # (what, audio, expected decision, expected reason)
    ("a short hello, then waiting", pcm(silence(0.5), syllables(0.6), silence(3)), Decision.HUMAN, Reason.HUMAN),
    ("a greeting that goes on", pcm(silence(0.3), syllables(4.5, off_ms=40)), Decision.MACHINE, Reason.LONG_GREETING),
    ("a greeting of many words", pcm(silence(0.3), syllables(4.5)), Decision.MACHINE, Reason.MAX_WORDS),
    ("dead air", pcm(silence(4)), Decision.NOTSURE, Reason.INITIAL_SILENCE),
    ("a beep after a short greeting", pcm(syllables(0.5), silence(0.2), tone(1000, 0.4), silence(2)),
     Decision.MACHINE, Reason.BEEP),
    ("hello on a noisy line", pcm(silence(0.5, 600), syllables(0.6, 6000) + silence(0.6, 600), silence(3, 600)),
     Decision.HUMAN, Reason.HUMAN),
    ("noisy hello after an RTP stream's lead-in of zeros and a half frame",
     pcm(np.zeros(400), silence(0.5, 600), syllables(0.6, 6000) + silence(0.6, 600), silence(3, 600)),
     Decision.HUMAN, Reason.HUMAN),
]


@pytest.mark.parametrize(("what", "audio", "decision", "reason"), CASES, ids=[c[0] for c in CASES])
def test_rules(what: str, audio: bytes, decision: Decision, reason: Reason) -> None:
    """Each rule of the state machine decides what it should, for the reason it should."""
    got, why, at = run(audio)
    assert (got, why) == (decision, reason), what
    assert 0 < at <= 5.0


def test_human_is_decided_after_the_greeting_silence() -> None:
    """HUMAN lands after_greeting_silence_ms after the hello ends, not before."""
    _, _, at = run(pcm(silence(0.5), syllables(0.6), silence(3)))
    assert 1.1 + 0.6 - 0.05 <= at <= 1.1 + 0.6 + 0.1


def test_asterisk_reference_keeps_app_amd_behaviour() -> None:
    """The reference settings are app_amd: dead air is a machine, a noisy line is one long word."""
    ref = AmdSettings.asterisk()
    assert ref.after_greeting_silence_ms == 800 and not ref.adaptive_floor and not ref.beep
    assert run(pcm(silence(4)), ref)[:2] == (Decision.MACHINE, Reason.INITIAL_SILENCE)
    noisy_hello = pcm(silence(0.5, 600), syllables(0.6, 6000) + silence(0.6, 600), silence(3, 600))
    assert run(noisy_hello, ref)[0] == Decision.MACHINE
    three_words = pcm(silence(0.3), syllables(0.75, on_ms=150, off_ms=100), silence(3))
    assert run(three_words, ref)[:2] == (Decision.MACHINE, Reason.MAX_WORDS)
    assert run(three_words)[:2] == (Decision.HUMAN, Reason.HUMAN)


def test_nothing_settled_is_notsure_within_total_analysis() -> None:
    """Alternating short words and pauses that never settle end as NOTSURE/too_long at 5 s."""
    amd = AmdSettings(words_min_voice_ms=10_000, greeting_ms=10_000)
    decision, reason, at = run(pcm(*[np.concatenate([syllables(0.3), silence(0.4)]) for _ in range(10)]), amd)
    assert (decision, reason) == (Decision.NOTSURE, Reason.TOO_LONG)
    assert at == pytest.approx(5.0)


def test_sixteen_khz_decides_like_eight() -> None:
    """16 kHz frames (640 bytes per 20 ms) give the same decisions as 8 kHz."""
    for _, audio8, decision, reason in CASES:
        samples = np.frombuffer(audio8, dtype="<i2").astype(np.float64)
        audio16 = np.repeat(samples, 2).astype("<i2").tobytes()
        assert run(audio16, rate=16000)[:2] == (decision, reason)


def test_a_decision_is_final() -> None:
    """After a decision, further frames return the same result object and finish() agrees."""
    det = AmdDetector()
    frames = split_frames(pcm(silence(0.3), syllables(3)))
    results = [det.feed(f) for f in frames]
    first = next(r for r in results if r is not None)
    assert all(r is first for r in results[results.index(first) :])
    assert det.finish() is first


def test_audio_that_ends_early_is_notsure() -> None:
    """A hang-up before anything settled gives NOTSURE/ended with the time heard."""
    result = detect(split_frames(pcm(silence(0.4), syllables(0.3))))
    assert (result.decision, result.reason) == (Decision.NOTSURE, Reason.ENDED)
    assert result.to_json()["decided_at_s"] == pytest.approx(0.7)


@pytest.mark.parametrize(
    "bad",
    [{"total_analysis_ms": 0}, {"greeting_ms": -1}, {"beep_min_hz": 2500.0}, {"beep_purity": 1.5},
     {"initial_silence_decision": "hangup"}],
)
def test_bad_settings_name_the_field(bad: dict[str, object]) -> None:
    """A bad setting is refused at construction with its name in the message."""
    with pytest.raises(ValueError, match=next(iter(bad))):
        AmdSettings(**bad)  # type: ignore[arg-type]


def test_decision_words_from_campaign_settings_become_the_enum() -> None:
    """initial_silence_decision given as a word (from a campaign's TOML) is stored as a Decision."""
    amd = AmdSettings(initial_silence_decision="machine")  # type: ignore[arg-type]
    assert amd.initial_silence_decision is Decision.MACHINE
    assert run(pcm(silence(4)), amd)[:2] == (Decision.MACHINE, Reason.INITIAL_SILENCE)


def test_unsupported_rate_is_refused() -> None:
    """Only 8 and 16 kHz are accepted."""
    with pytest.raises(ValueError, match="sample_rate"):
        AmdDetector(sample_rate=44100)


def test_tone_measurements() -> None:
    """A 1 kHz tone is pure and found within a few hertz; noise is not; odd byte counts are tolerated."""
    t = dominant_tone(tone(1000, 0.02), RATE, 400, 2000)
    assert t.purity > 0.95 and abs(t.hz - 1000) < 5
    assert dominant_tone(silence(0.02, 3000), RATE, 400, 2000).purity < 0.5
    assert pcm16(b"\x01\x00\x02").tolist() == [1.0]
    tracker = ToneTracker(RATE, low_hz=400, high_hz=2000, min_ms=150, purity=0.9, tolerance_hz=12)
    hits = [tracker.feed(pcm16(f), 20, loud=True) for f in split_frames(pcm(tone(850, 0.3)))]
    assert hits.index(next(h for h in hits if h is not None)) == 7  # the 8th 20 ms frame reaches 150 ms
    floor = NoiseFloor(window_ms=1000, rank=3)
    assert floor.update(1000, 20) == 1000  # the only frame so far
    assert [floor.update(level, 20) for level in (0, 900, 800)] == [1000, 1000, 900]  # one zero frame is outvoted
    assert floor.update(5000, 1000) == 5000  # a window later only the loud frame is left


def test_early_media_tells_ringback_from_announcement() -> None:
    """Ringback (450 Hz, and 440+480 Hz) is ringback; speech before the answer is an announcement."""
    ring = pcm(tone(450, 1.0, 4000), silence(2.0), tone(450, 1.0, 4000))
    assert classify_early_media(split_frames(ring)).kind == EarlyMedia.RINGBACK
    us_ring = pcm(tone(440, 2.0, 3000) + tone(480, 2.0, 3000), silence(1.0))
    assert classify_early_media(split_frames(us_ring)).kind == EarlyMedia.RINGBACK
    announced = classify_early_media(split_frames(pcm(tone(450, 1.0, 4000), silence(1.0), syllables(3.0))))
    assert announced.kind == EarlyMedia.ANNOUNCEMENT and announced.decided_at_s is not None
    assert classify_early_media([]).kind == EarlyMedia.SILENCE


frame_lengths = st.sampled_from([0, 1, 159, 160, 161, 320, 321, 640, 1000])
frames_strategy = st.lists(
    st.one_of(
        st.binary(max_size=700),
        st.builds(lambda n, v: np.full(n, v, dtype="<i2").tobytes(), frame_lengths, st.integers(-32768, 32767)),
    ),
    max_size=400,
)


@settings(max_examples=150, deadline=None)
@given(frames=frames_strategy, rate=st.sampled_from([8000, 16000]), asterisk=st.booleans())
def test_never_crashes_and_decides_within_total_analysis(frames: list[bytes], rate: int, asterisk: bool) -> None:
    """Any frame sequence (odd sizes, empty, clipped, random bytes) gives a result by 5 s of audio."""
    amd = AmdSettings.asterisk() if asterisk else AmdSettings()
    det = AmdDetector(amd, rate)
    heard_ms = 0.0
    for frame in frames:
        before = det.result
        result = det.feed(frame)
        heard_ms += (len(frame) // 2) * 1000 / rate
        if before is not None:
            assert result is before
        if heard_ms >= amd.total_analysis_ms:
            assert result is not None
    final = det.finish()
    assert final.decided_at_s <= amd.total_analysis_ms / 1000 + 640 / 2 / rate + 1e-9 or final.reason == Reason.ENDED
    assert final.decision in Decision
    early = classify_early_media(frames, sample_rate=rate)
    assert early.kind in EarlyMedia


def test_settings_are_frozen_and_replaceable() -> None:
    """Campaign settings derive from the defaults by replace(); the object itself cannot change."""
    amd = dataclasses.replace(AmdSettings(), greeting_ms=2000)
    assert amd.greeting_ms == 2000
    with pytest.raises(dataclasses.FrozenInstanceError):
        amd.greeting_ms = 1  # type: ignore[misc]
