"""Answering-machine detection: HUMAN, MACHINE or NOTSURE from the first seconds after the answer.

Pure (numpy, no I/O). Feed :class:`AmdDetector` the callee's audio in 20 ms
frames of signed 16-bit PCM (8 kHz; 16 kHz works too) from the moment of the
answer; the first frame that settles it returns an :class:`AmdResult`
(decision, a reason code, a sentence saying why, and the audio time at which
it was decided). Every later call returns the same result.

The core is Asterisk app_amd's word/silence state machine with its defaults
(:meth:`AmdSettings.asterisk` is exactly that, kept as the bench's
reference): a greeting followed by ``after_greeting_silence_ms`` of silence
is a person ("Hello?" ... waiting for us); ``greeting_ms`` of voice, or
``max_words`` words, is a machine reading its greeting; a long initial
silence, or nothing settled within ``total_analysis_ms``, ends the analysis.

Where the corpus (``scripts/make-amd-corpus``, ``bench/bench_amd.py``)
showed the plain machine wrong, the defaults change it:

* silence is judged against an adaptive noise floor
  (:class:`~shared.amd_beep.NoiseFloor`), never below ``silence_threshold``:
  on a noisy line a fixed 256 hears one endless word and calls every person
  a machine;
* a person saying "Yes, who is this?" or "你好，哪位？" is three to six words,
  which the plain machine calls MAXWORDS; here words decide only once
  ``words_min_voice_ms`` of voice has been heard (1500 ms, as much as a long
  greeting: no lower bar kept the corpus's short answers human), so in effect
  the amount of voice decides and the word count only names the reason;
* the after-greeting silence that makes a person is 600 ms, not 800: it
  brings the decision p50 under 2.5 s, at the price of one greeting in 120
  on the tuning corpus (a sentence, then a 600 ms pause) taken for a person;
* a steady tone of ``beep_min_hz``..``beep_max_hz`` for ``beep_min_ms``
  (:class:`~shared.amd_beep.ToneTracker`) is a voicemail beep: MACHINE;
* initial silence decides ``initial_silence_decision`` (NOTSURE by default,
  not MACHINE): a person who picks up and says nothing must not be hung up on.

Carrier announcements heard as early media before any answer are judged by
:mod:`shared.amd_early`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from shared.amd_beep import BeepListener, NoiseFloor, ToneTracker, mean_abs, pcm16

Frame = bytes | bytearray | memoryview | npt.NDArray[np.int16]
SAMPLE_RATES = (8000, 16000)


class Decision(StrEnum):
    HUMAN = "human"
    MACHINE = "machine"
    NOTSURE = "notsure"


class Reason(StrEnum):
    """Why: Asterisk's AMDCAUSE vocabulary, plus ``beep`` and ``ended``."""

    HUMAN = "human"  # a greeting, then after_greeting_silence_ms of silence
    LONG_GREETING = "long_greeting"
    MAX_WORDS = "max_words"
    MAX_WORD_LENGTH = "max_word_length"
    BEEP = "beep"
    INITIAL_SILENCE = "initial_silence"
    TOO_LONG = "too_long"
    ENDED = "ended"  # the audio stopped (hang-up) before anything was settled


@dataclass(frozen=True)
class AmdSettings:
    """Every knob of the detector; defaults are app_amd's, plus the improvements (module docstring)."""

    initial_silence_ms: int = 2500
    greeting_ms: int = 1500
    # app_amd waits 800 ms; 600 ms brings p50 under 2.5 s and costs 1 greeting in 120 (module docstring).
    after_greeting_silence_ms: int = 600
    total_analysis_ms: int = 5000
    min_word_ms: int = 100
    between_words_silence_ms: int = 50
    max_words: int = 3  # this many words is a machine ("more than 2 words")
    max_word_ms: int = 5000
    silence_threshold: int = 256  # mean absolute 16-bit sample; the floor of the adaptive threshold
    initial_silence_decision: Decision = Decision.NOTSURE
    adaptive_floor: bool = True
    noise_floor_ratio: float = 1.6  # voice is this many times (4 dB over) the noise floor's level
    noise_floor_window_ms: int = 1000
    noise_floor_rank: int = 6  # the floor is the 6th quietest frame of the window: 120 ms at 20 ms frames
    # max_words decides only with this much voice heard: espeak-ng's (and a person's) "你好，哪位？"
    # is five "words" of 50 ms gaps, and any shorter bar called short answers machines.
    words_min_voice_ms: int = 1500
    beep: bool = True
    beep_min_ms: int = 150
    beep_min_hz: float = 400.0
    beep_max_hz: float = 2000.0
    # A beep frame: 70% of its power within one window lobe of the peak, the peak 10 dB above any other,
    # and the peak within 8 Hz of both the run's start and its mean. Noisy beeps (SNR 10 dB) pass; the
    # steadiest synthetic vowels, which glide or carry harmonics, do not (bench/bench_amd.py, beeps).
    beep_purity: float = 0.7
    beep_tolerance_hz: float = 8.0
    beep_min_spur_db: float = 10.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if value < 0 or (value == 0 and f.name in _POSITIVE):
                bound = "> 0" if f.name in _POSITIVE else ">= 0"
                raise ValueError(f"amd setting {f.name} must be {bound}, got {value}")
        if self.beep_min_hz >= self.beep_max_hz:
            raise ValueError(f"amd setting beep_min_hz ({self.beep_min_hz}) must be below beep_max_hz")
        if not 0 < self.beep_purity <= 1:
            raise ValueError(f"amd setting beep_purity must be in (0, 1], got {self.beep_purity}")
        try:  # campaign settings arrive as words ("machine"): keep the enum
            object.__setattr__(self, "initial_silence_decision", Decision(self.initial_silence_decision))
        except ValueError:
            raise ValueError(
                f"amd setting initial_silence_decision must be one of {[d.value for d in Decision]},"
                f" got {self.initial_silence_decision!r}"
            ) from None

    @classmethod
    def asterisk(cls) -> AmdSettings:
        """Plain app_amd: fixed threshold, words decide at once, no beep, initial silence is a machine."""
        return cls(
            after_greeting_silence_ms=800,
            initial_silence_decision=Decision.MACHINE,
            adaptive_floor=False,
            words_min_voice_ms=0,
            beep=False,
        )


_POSITIVE = frozenset({"total_analysis_ms", "min_word_ms", "max_words", "max_word_ms", "noise_floor_ratio",
                       "noise_floor_window_ms", "noise_floor_rank"})


@dataclass(frozen=True)
class AmdResult:
    """What was decided, why, and when (seconds of audio since the answer)."""

    decision: Decision
    reason: Reason
    detail: str
    decided_at_s: float
    words: int
    voice_s: float

    def to_json(self) -> dict[str, object]:
        return {"decision": self.decision.value, "reason": self.reason.value, "detail": self.detail,
                "decided_at_s": round(self.decided_at_s, 3)}


class AmdDetector:
    """One call's detector. Not thread-safe: one consumer feeds it frames in order."""

    def __init__(self, settings: AmdSettings | None = None, sample_rate: int = 8000) -> None:
        if sample_rate not in SAMPLE_RATES:
            raise ValueError(f"sample_rate must be one of {SAMPLE_RATES}, got {sample_rate}")
        self.settings = s = settings or AmdSettings()
        self.rate = sample_rate
        self.result: AmdResult | None = None
        self._floor = NoiseFloor(s.noise_floor_window_ms, s.noise_floor_rank)
        self._tones = ToneTracker(
            sample_rate, low_hz=s.beep_min_hz, high_hz=s.beep_max_hz, min_ms=s.beep_min_ms,
            purity=s.beep_purity, tolerance_hz=s.beep_tolerance_hz, min_spur_db=s.beep_min_spur_db,
        )
        self._total_ms = 0.0
        self._silence_ms = 0.0  # consecutive silence, like ast_dsp_silence's total
        self._consecutive_voice_ms = 0.0
        self._voice_ms = 0.0
        self._words = 0
        self._in_word = True  # app_amd starts "in a word": a first word needs silence before it to count
        self._in_initial_silence = True
        self._in_greeting = False

    @property
    def elapsed_s(self) -> float:
        return self._total_ms / 1000

    def threshold(self, level: float, ms: float) -> float:
        """The level above which this frame is voice (updates the floor)."""
        s = self.settings
        if not s.adaptive_floor:
            return float(s.silence_threshold)
        floor = self._floor.update(level, ms)
        return max(float(s.silence_threshold), floor * s.noise_floor_ratio)

    def feed(self, frame: Frame) -> AmdResult | None:
        """Analyse one frame; the result once decided (then always the same), else None."""
        if self.result is not None:
            return self.result
        samples = pcm16(frame)
        ms = samples.size * 1000 / self.rate
        if ms <= 0:
            return None
        self._total_ms += ms
        s = self.settings
        if self._total_ms >= s.total_analysis_ms:
            return self._decide(Decision.NOTSURE, Reason.TOO_LONG, f"nothing settled in {s.total_analysis_ms} ms")
        level = mean_abs(samples)
        voice = level >= self.threshold(level, ms)
        if s.beep:
            hz = self._tones.feed(samples, ms, loud=voice)
            if hz is not None:
                return self._decide(Decision.MACHINE, Reason.BEEP, f"a {hz:.0f} Hz tone for {s.beep_min_ms} ms")
        return self._voice(ms) if voice else self._silence(ms)

    def finish(self) -> AmdResult:
        """The audio ended (hang-up): the result if decided, else NOTSURE/ended."""
        if self.result is None:
            return self._decide(Decision.NOTSURE, Reason.ENDED, f"audio ended after {self._total_ms:.0f} ms")
        return self.result

    def _silence(self, ms: float) -> AmdResult | None:
        s = self.settings
        self._silence_ms += ms
        if self._silence_ms >= s.between_words_silence_ms:
            self._in_word = False
            self._consecutive_voice_ms = 0.0
        if self._in_initial_silence and self._silence_ms >= s.initial_silence_ms:
            return self._decide(
                s.initial_silence_decision, Reason.INITIAL_SILENCE, f"{self._silence_ms:.0f} ms of silence first"
            )
        if self._in_greeting and self._silence_ms >= s.after_greeting_silence_ms:
            return self._decide(
                Decision.HUMAN, Reason.HUMAN,
                f"{self._voice_ms:.0f} ms of voice, then {self._silence_ms:.0f} ms of silence",
            )
        return None

    def _voice(self, ms: float) -> AmdResult | None:
        s = self.settings
        self._consecutive_voice_ms += ms
        self._voice_ms += ms
        self._silence_ms = 0.0
        if self._consecutive_voice_ms >= s.min_word_ms and not self._in_word:
            self._words += 1
            self._in_word = True
        if self._consecutive_voice_ms >= s.max_word_ms:
            detail = f"one word of {self._consecutive_voice_ms:.0f} ms"
            return self._decide(Decision.MACHINE, Reason.MAX_WORD_LENGTH, detail)
        if self._words >= s.max_words and self._voice_ms >= s.words_min_voice_ms:
            return self._decide(
                Decision.MACHINE, Reason.MAX_WORDS, f"{self._words} words in {self._voice_ms:.0f} ms of voice"
            )
        if self._in_greeting and self._voice_ms >= s.greeting_ms:
            return self._decide(Decision.MACHINE, Reason.LONG_GREETING, f"{self._voice_ms:.0f} ms of voice")
        if self._consecutive_voice_ms >= s.min_word_ms and not self._in_greeting:
            self._in_initial_silence = False
            self._in_greeting = True
        return None

    def _decide(self, decision: Decision, reason: Reason, detail: str) -> AmdResult:
        self.result = AmdResult(decision, reason, detail, self._total_ms / 1000, self._words, self._voice_ms / 1000)
        return self.result


def beep_listener(settings: AmdSettings | None = None, sample_rate: int = 8000) -> BeepListener:
    """A :class:`~shared.amd_beep.BeepListener` with these settings' beep parameters (voicemail drop)."""
    s = settings or AmdSettings()
    return BeepListener(sample_rate, low_hz=s.beep_min_hz, high_hz=s.beep_max_hz, min_ms=s.beep_min_ms,
                        purity=s.beep_purity, tolerance_hz=s.beep_tolerance_hz, threshold=s.silence_threshold,
                        min_spur_db=s.beep_min_spur_db)


def detect(frames: list[Frame], settings: AmdSettings | None = None, sample_rate: int = 8000) -> AmdResult:
    """Run a detector over a whole recording; NOTSURE/ended if it runs out first."""
    detector = AmdDetector(settings, sample_rate)
    for frame in frames:
        result = detector.feed(frame)
        if result is not None:
            return result
    return detector.finish()


def split_frames(pcm: bytes, sample_rate: int = 8000, frame_ms: int = 20) -> list[bytes]:
    """Cut PCM16 audio into ``frame_ms`` frames (a short last frame dropped), as RTP would carry it."""
    size = sample_rate * frame_ms // 1000 * 2
    return [pcm[i : i + size] for i in range(0, len(pcm) - size + 1, size)]
