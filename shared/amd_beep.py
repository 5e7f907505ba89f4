"""Frame measurements for answering-machine detection: level, noise floor, steady tones.

Pure numpy, no I/O. Three pieces the detector (:mod:`shared.amd`) and the
early-media classifier share:

* :func:`pcm16` turns whatever a caller holds (bytes from an RTP tap, a numpy
  array) into samples, tolerating odd lengths and empty frames;
* :class:`NoiseFloor` follows the level of the quietest recent frame, so
  "silence" means "near the line's own noise" rather than a fixed 256 that
  a noisy line never gets below;
* :class:`ToneTracker` finds a steady single tone (a voicemail beep, a
  ringback) by one FFT per 20 ms frame: a frame is tonal when most of its
  power sits within one window main lobe of the peak, and a tone is a run of
  tonal frames whose peak stays within a few hertz. Speech is harmonic (its
  power spreads over several harmonics and glides), so it rarely passes.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Samples = npt.NDArray[np.float64]


def pcm16(frame: bytes | bytearray | memoryview | npt.NDArray[np.int16]) -> Samples:
    """Signed 16-bit little-endian PCM (or an int16 array) as float samples; a trailing odd byte is dropped."""
    if isinstance(frame, np.ndarray):
        return np.asarray(frame, dtype=np.float64).ravel()
    raw = bytes(frame)
    usable = len(raw) - (len(raw) % 2)
    return np.frombuffer(raw[:usable], dtype="<i2").astype(np.float64)


def mean_abs(samples: Samples) -> float:
    """Mean absolute sample value: the level Asterisk's silence detector compares to its threshold."""
    return float(np.mean(np.abs(samples))) if samples.size else 0.0


class NoiseFloor:
    """The line's noise level: a low order statistic of the last ``window_ms`` of frame levels.

    Speech dips between syllables several times a second, so even inside a
    continuous greeting the window holds frames at the background level,
    and a noise that starts or grows is learnt within one window. The
    ``rank``-th quietest frame (not the quietest) is taken, so a few odd
    frames cannot drag the floor to zero for a whole window: the digital
    silence and the half-empty frame before an RTP stream starts, on a noisy
    line. Digital silence that lasts (a clean line, a leg whose far end
    suppresses silence) does fill the low ranks, and the floor is then 0.
    With nothing to go on the floor is 0.
    """

    def __init__(self, window_ms: float, rank: int = 6) -> None:
        self.window_ms = window_ms
        self.rank = rank
        self._now = 0.0
        self._levels: deque[tuple[float, float]] = deque()  # (time, level) within the window
        self.level = 0.0

    def update(self, level: float, ms: float) -> float:
        self._now += ms
        levels = self._levels
        levels.append((self._now, level))
        while levels and levels[0][0] <= self._now - self.window_ms:
            levels.popleft()
        if not levels:
            self.level = 0.0
        else:
            ordered = sorted(lv for _, lv in levels)
            self.level = ordered[min(self.rank - 1, len(ordered) - 1)]
        return self.level


@dataclass(frozen=True)
class ToneFrame:
    """One frame's strongest tone: its frequency, the share of the frame's power around it, and how far
    (dB) it stands above the strongest other peak. A beep in noise keeps a large ``spur_db``; a voiced
    sound, however steady, has other harmonics a few dB down."""

    hz: float
    purity: float
    spur_db: float = 0.0


def dominant_tone(samples: Samples, rate: int, low_hz: float, high_hz: float) -> ToneFrame:
    """The peak in ``[low_hz, high_hz]`` and the share of power within one Hann main lobe of it."""
    n = samples.size
    if n < 32:
        return ToneFrame(0.0, 0.0)
    x = (samples - samples.mean()) * np.hanning(n)
    size = 1 << max(9, math.ceil(math.log2(4 * n)))  # zero-pad: bins of a few hertz, peak well placed
    power = np.abs(np.fft.rfft(x, size)) ** 2
    total = float(power.sum())
    if total <= 0.0:
        return ToneFrame(0.0, 0.0)
    bin_hz = rate / size
    lo = max(1, int(low_hz / bin_hz))
    hi = min(power.size - 2, int(high_hz / bin_hz) + 1)
    if hi <= lo:
        return ToneFrame(0.0, 0.0)
    peak = lo + int(np.argmax(power[lo:hi]))
    a, b, c = power[peak - 1], power[peak], power[peak + 1]
    denom = a - 2 * b + c
    offset = 0.5 * (a - c) / denom if denom != 0 else 0.0  # parabolic interpolation of the peak
    lobe = max(1, round(2 * rate / n / bin_hz))  # Hann main lobe half-width: two unpadded bins
    around = float(power[max(0, peak - lobe) : peak + lobe + 1].sum())
    others = np.concatenate([power[1 : max(1, peak - 2 * lobe)], power[peak + 2 * lobe + 1 :]])
    spur = float(others.max()) if others.size else 0.0
    spur_db = 10 * math.log10(b / spur) if spur > 0 else 99.0
    return ToneFrame((peak + offset) * bin_hz, around / total, spur_db)


class ToneTracker:
    """Detects a steady tone lasting ``min_ms``: the beep of a voicemail box, a ringback's burst.

    ``feed`` returns the tone's frequency on the frame where the run first
    reaches ``min_ms`` (once per run), else None. ``active`` frames only:
    the caller passes ``loud=False`` for frames at the noise floor, which
    break a run like any non-tonal frame.
    """

    def __init__(
        self, rate: int, *, low_hz: float, high_hz: float, min_ms: float, purity: float, tolerance_hz: float,
        min_spur_db: float = 0.0,
    ) -> None:
        self.rate = rate
        self.min_spur_db = min_spur_db
        self.low_hz = low_hz
        self.high_hz = high_hz
        self.min_ms = min_ms
        self.purity = purity
        self.tolerance_hz = tolerance_hz
        self.run_ms = 0.0
        self.run_hz = 0.0
        self.tonal_ms = 0.0  # all tonal time seen, for the early-media verdict
        self._first_hz = 0.0
        self._reported = False

    def classify(self, samples: Samples) -> ToneFrame | None:
        """The frame's tone if it is tonal enough, else None."""
        tone = dominant_tone(samples, self.rate, self.low_hz, self.high_hz)
        return tone if tone.purity >= self.purity and tone.spur_db >= self.min_spur_db else None

    def feed(self, samples: Samples, ms: float, *, loud: bool) -> float | None:
        tone = self.classify(samples) if loud else None
        if tone is None:
            self.run_ms = 0.0
            self._reported = False
            return None
        self.tonal_ms += ms
        steady = abs(tone.hz - self.run_hz) <= self.tolerance_hz and abs(tone.hz - self._first_hz) <= self.tolerance_hz
        if self.run_ms > 0 and steady:  # near both the run's mean and its start: a glide is speech, not a beep
            self.run_ms += ms
            self.run_hz += (tone.hz - self.run_hz) * ms / self.run_ms  # running mean of the run
        else:
            self.run_ms = ms
            self.run_hz = self._first_hz = tone.hz
            self._reported = False
        if self.run_ms >= self.min_ms and not self._reported:
            self._reported = True
            return self.run_hz
        return None


class BeepListener:
    """Listens for a voicemail beep, e.g. after MACHINE, so a message is played only once the box records.

    Feed frames in order; :meth:`feed` returns ``(seconds since the first frame, hz)`` on the frame
    where a steady tone has lasted ``min_ms``, else None. A frame is loud enough when its level is at
    least ``threshold`` (the tone's purity already tells it from noise).
    """

    def __init__(self, rate: int, *, low_hz: float, high_hz: float, min_ms: float, purity: float,
                 tolerance_hz: float, threshold: float, min_spur_db: float = 0.0) -> None:
        self.rate = rate
        self.threshold = threshold
        self._tones = ToneTracker(rate, low_hz=low_hz, high_hz=high_hz, min_ms=min_ms, purity=purity,
                                  tolerance_hz=tolerance_hz, min_spur_db=min_spur_db)
        self._ms = 0.0

    def feed(self, frame: bytes | bytearray | memoryview | npt.NDArray[np.int16]) -> tuple[float, float] | None:
        samples = pcm16(frame)
        ms = samples.size * 1000 / self.rate
        if ms <= 0:
            return None
        self._ms += ms
        hz = self._tones.feed(samples, ms, loud=mean_abs(samples) >= self.threshold)
        return None if hz is None else (self._ms / 1000, hz)
