"""When to start a voicemail message: after the box's beep has ended, or after its greeting fell silent.

Pure (numpy, no I/O). A voicemail box records from the end of its beep; a
message started while the greeting (or the beep) still plays loses its first
words. :class:`VoicemailWaiter` is fed the callee's 20 ms frames from the
moment the ``voicemail_drop`` step starts and says when to speak:

* ``beep``: a steady 400-2000 Hz tone (the detector's beep rule,
  :class:`~shared.amd_beep.ToneTracker` with :class:`~shared.amd.AmdSettings`'
  beep parameters) was heard, and has now *stopped*: the box records. The tone
  is recognised 150 ms in and corpus beeps last 0.2-0.6 s, so waiting for its
  end keeps up to 0.4 s of the message off the beep;
* ``silence``: ``greeting_end_ms`` of silence with no beep (a box that does
  not beep, or a greeting that ended before the step began). 2.5 s, because
  the corpus's beeps come 0.5-1.3 s after the greeting's last word and a
  greeting's own pauses between sentences are under a second: a shorter wait
  would start the message in a pause, or just before the beep.

The step's bound (``max_wait_s``) is the flow engine's timer, not this
module's: a greeting that never ends or a beep never recognised still gets the
message, then.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from shared.amd import AmdSettings, Frame
from shared.amd_beep import NoiseFloor, ToneTracker, mean_abs, pcm16

Heard = Literal["beep", "silence"]
BEEP_END_WAIT_MS = 1500  # a "beep" that goes on longer is a tone, not a beep: speak anyway


@dataclass(frozen=True)
class DropSettings:
    """The ``voicemail_drop`` step's parameters (``voicemail_drop = { max_wait_s = 20 }``)."""

    max_wait_s: float = 20.0  # then play anyway: the greeting never ended, or its beep was not recognised
    greeting_end_ms: int = 2500  # this much silence with no beep ends the greeting

    def __post_init__(self) -> None:
        if isinstance(self.max_wait_s, bool) or not isinstance(self.max_wait_s, int | float) \
                or not 1 <= self.max_wait_s <= 120:
            raise ValueError(f"max_wait_s must be 1-120 seconds, got {self.max_wait_s!r}")
        if isinstance(self.greeting_end_ms, bool) or not isinstance(self.greeting_end_ms, int) \
                or not 300 <= self.greeting_end_ms <= 10000:
            raise ValueError(f"greeting_end_ms must be a whole number 300-10000, got {self.greeting_end_ms!r}")

    @classmethod
    def parse(cls, params: dict[str, Any]) -> DropSettings:
        """From the flow file's table; ValueError naming an unknown key or a bad value."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"unknown key {unknown[0]!r}; use {', '.join(sorted(known))}")
        return cls(**params)


class VoicemailWaiter:
    """Feed frames in order; :meth:`feed` returns ``(heard, seconds since the first frame)`` once, else None."""

    def __init__(self, drop: DropSettings | None = None, amd: AmdSettings | None = None,
                 sample_rate: int = 8000) -> None:
        self.drop = drop or DropSettings()
        self.amd = a = amd or AmdSettings()
        self.rate = sample_rate
        self._tones = ToneTracker(sample_rate, low_hz=a.beep_min_hz, high_hz=a.beep_max_hz, min_ms=a.beep_min_ms,
                                  purity=a.beep_purity, tolerance_hz=a.beep_tolerance_hz,
                                  min_spur_db=a.beep_min_spur_db)
        self._floor = NoiseFloor(a.noise_floor_window_ms, a.noise_floor_rank)
        self._ms = 0.0
        self._silence_ms = 0.0
        self._beep_at_ms: float | None = None
        self.beep_hz: float | None = None
        self.result: tuple[Heard, float] | None = None

    def feed(self, frame: Frame) -> tuple[Heard, float] | None:
        if self.result is not None:
            return self.result
        samples = pcm16(frame)
        ms = samples.size * 1000 / self.rate
        if ms <= 0:
            return None
        self._ms += ms
        level = mean_abs(samples)
        floor = self._floor.update(level, ms)
        threshold = max(float(self.amd.silence_threshold), floor * self.amd.noise_floor_ratio)
        loud = level >= threshold
        hz = self._tones.feed(samples, ms, loud=level >= self.amd.silence_threshold)
        if self._beep_at_ms is None:
            if hz is not None:
                self._beep_at_ms, self.beep_hz = self._ms, hz
                return None
            self._silence_ms = 0.0 if loud else self._silence_ms + ms
            if self._silence_ms >= self.drop.greeting_end_ms:
                return self._heard("silence")
            return None
        if self._tones.run_ms == 0.0 or self._ms - self._beep_at_ms >= BEEP_END_WAIT_MS:
            return self._heard("beep")  # the tone stopped on this frame: the box records from here
        return None

    def _heard(self, what: Heard) -> tuple[Heard, float]:
        self.result = (what, self._ms / 1000)
        return self.result
