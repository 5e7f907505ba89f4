"""What a prompt WAV must be, checked from its bytes (pure: stdlib ``wave`` over a buffer).

The conference bridge runs at 8 kHz here; pjmedia resamples a 16 kHz file but
not a stereo, 8-bit, float or compressed one, and a prompt that would not play
is a silent call. So a prompt is mono, 8 or 16 kHz, 16-bit linear PCM, and
long enough to hear (at least 100 ms).
"""

from __future__ import annotations

import hashlib
import io
import wave
from dataclasses import dataclass

RATES = (8000, 16000)
MIN_DURATION_S = 0.1


class WavProblem(ValueError):
    """Why these bytes are not a usable prompt, in words for an operator."""


@dataclass(frozen=True, slots=True)
class WavInfo:
    rate: int
    duration_s: float
    sha256: str


def check_wav(data: bytes) -> WavInfo:
    """Facts about a usable prompt, or WavProblem saying what is wrong and how to fix it."""
    fix = "convert it with: sox IN.wav -r 8000 -c 1 -b 16 -e signed-integer OUT.wav"
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            channels, width, rate, frames = (wav.getnchannels(), wav.getsampwidth(), wav.getframerate(),
                                             wav.getnframes())
    except (wave.Error, EOFError, RuntimeError, ValueError) as exc:  # a truncated chunk raises RuntimeError
        raise WavProblem(f"not a PCM WAV file ({exc}); {fix}") from None
    if channels != 1:
        raise WavProblem(f"{channels} channels; a prompt must be mono: {fix}")
    if width != 2:
        raise WavProblem(f"{8 * width}-bit samples; a prompt must be 16-bit: {fix}")
    if rate not in RATES:
        raise WavProblem(f"{rate} Hz; a prompt must be 8000 or 16000 Hz: {fix}")
    duration = frames / rate
    if duration < MIN_DURATION_S:
        raise WavProblem(f"only {duration * 1000:.0f} ms of audio; a prompt must last at least 100 ms")
    return WavInfo(rate=rate, duration_s=duration, sha256=hashlib.sha256(data).hexdigest())
