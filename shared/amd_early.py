"""Carrier announcements in early media: what a 183 Session Progress played before any answer.

Pure (numpy, no I/O). A call that is never answered may still have told us
why: "您拨打的用户暂时无法接通，请稍后再拨" or "the number you have dialed is not
in service", played as early media, usually after a ring or two. The dialer
should record that as a carrier announcement (and may cancel at once)
instead of waiting out the ring timeout for a ``no_answer``.

:class:`EarlyMediaAnalyzer` takes the pre-answer frames and tells speech from
ringback: a frame is *tone* when one steady peak holds its power (ringback:
450 Hz, or 440+480 Hz, which a 20 ms window cannot split and sees as one
peak), *speech* when it is above the noise floor but not tonal. It settles
on ``announcement`` once ``min_speech_ms`` of speech in at least
``min_words`` bursts has been heard. Music on hold or a coloured ring-back
tone (彩铃) is neither tone nor silence and would read as speech: a campaign
that dials numbers with coloured ring-back should not act on this verdict
alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shared.amd import SAMPLE_RATES, Frame
from shared.amd_beep import NoiseFloor, ToneTracker, mean_abs, pcm16


class EarlyMedia(StrEnum):
    ANNOUNCEMENT = "announcement"  # speech before any answer: a carrier message
    RINGBACK = "ringback"  # tones only
    SILENCE = "silence"  # nothing above the floor (or no early media at all)
    UNCLEAR = "unclear"  # some speech, too little to call it an announcement


@dataclass(frozen=True)
class EarlyMediaSettings:
    silence_threshold: int = 256
    noise_floor_ratio: float = 2.0
    noise_floor_window_ms: int = 1000
    noise_floor_rank: int = 6
    tone_min_hz: float = 300.0
    tone_max_hz: float = 2000.0
    tone_purity: float = 0.75  # ringback needs less than a beep: it is 1-2 s of it
    min_speech_ms: int = 1200
    min_words: int = 3
    min_word_ms: int = 100
    between_words_silence_ms: int = 50

    def __post_init__(self) -> None:
        if self.min_speech_ms <= 0 or self.min_words <= 0 or self.noise_floor_ratio <= 0:
            raise ValueError("early-media settings min_speech_ms, min_words and noise_floor_ratio must be > 0")


@dataclass(frozen=True)
class EarlyMediaVerdict:
    kind: EarlyMedia
    speech_s: float
    tone_s: float
    words: int
    decided_at_s: float | None  # audio time when it became an announcement, else None

    def to_json(self) -> dict[str, object]:
        return {"early_media": self.kind.value, "speech_s": round(self.speech_s, 2), "tone_s": round(self.tone_s, 2),
                "decided_at_s": None if self.decided_at_s is None else round(self.decided_at_s, 3)}


class EarlyMediaAnalyzer:
    """Feed pre-answer frames in order; :meth:`verdict` at any time (e.g. at the final response)."""

    def __init__(self, settings: EarlyMediaSettings | None = None, sample_rate: int = 8000) -> None:
        if sample_rate not in SAMPLE_RATES:
            raise ValueError(f"sample_rate must be one of {SAMPLE_RATES}, got {sample_rate}")
        self.settings = s = settings or EarlyMediaSettings()
        self.rate = sample_rate
        self._floor = NoiseFloor(s.noise_floor_window_ms, s.noise_floor_rank)
        self._tones = ToneTracker(sample_rate, low_hz=s.tone_min_hz, high_hz=s.tone_max_hz, min_ms=1e9,
                                  purity=s.tone_purity, tolerance_hz=50.0)
        self._total_ms = 0.0
        self._speech_ms = 0.0
        self._tone_ms = 0.0
        self._burst_ms = 0.0
        self._gap_ms = 0.0
        self._words = 0
        self._in_word = False
        self._decided_at: float | None = None

    def feed(self, frame: Frame) -> EarlyMedia | None:
        """Analyse one frame; ANNOUNCEMENT from the frame that settles it on, else None."""
        samples = pcm16(frame)
        ms = samples.size * 1000 / self.rate
        if ms <= 0:
            return EarlyMedia.ANNOUNCEMENT if self._decided_at is not None else None
        self._total_ms += ms
        level = mean_abs(samples)
        floor = self._floor.update(level, ms)
        loud = level >= max(float(self.settings.silence_threshold), floor * self.settings.noise_floor_ratio)
        # A tone is judged against the fixed threshold: a ring that starts the early media sets
        # the floor to its own level, and its purity already tells it from noise.
        tonal = level >= self.settings.silence_threshold and self._tones.classify(samples) is not None
        if tonal:
            self._tone_ms += ms
        if loud and not tonal:
            self._speech(ms)
        else:
            self._gap(ms)
        return EarlyMedia.ANNOUNCEMENT if self._decided_at is not None else None

    def _speech(self, ms: float) -> None:
        s = self.settings
        self._speech_ms += ms
        self._burst_ms += ms
        self._gap_ms = 0.0
        if self._burst_ms >= s.min_word_ms and not self._in_word:
            self._words += 1
            self._in_word = True
        if self._decided_at is None and self._speech_ms >= s.min_speech_ms and self._words >= s.min_words:
            self._decided_at = self._total_ms / 1000

    def _gap(self, ms: float) -> None:
        self._gap_ms += ms
        if self._gap_ms >= self.settings.between_words_silence_ms:
            self._burst_ms = 0.0
            self._in_word = False

    def verdict(self) -> EarlyMediaVerdict:
        if self._decided_at is not None:
            kind = EarlyMedia.ANNOUNCEMENT
        elif self._speech_ms >= self.settings.min_word_ms:
            kind = EarlyMedia.UNCLEAR
        elif self._tone_ms > 0:
            kind = EarlyMedia.RINGBACK
        else:
            kind = EarlyMedia.SILENCE
        return EarlyMediaVerdict(kind, self._speech_ms / 1000, self._tone_ms / 1000, self._words, self._decided_at)


def classify_early_media(frames: list[Frame], settings: EarlyMediaSettings | None = None,
                         sample_rate: int = 8000) -> EarlyMediaVerdict:
    """The verdict on a whole pre-answer recording."""
    analyzer = EarlyMediaAnalyzer(settings, sample_rate)
    for frame in frames:
        analyzer.feed(frame)
    return analyzer.verdict()
