"""Prompt audio on a worker host: fetched by hash, rendered once, cached under DIALER_DATA_DIR.

Before a call is placed, :func:`resolve_prompts` turns a flow into one local
WAV path per step that plays something. A ``play`` step's WAV comes from the
local cache or, once, from the ``prompts`` table (the campaign stored it at
creation); a ``say`` step's text is filled from the job's columns, hashed
with its voice, and taken from the cache, from the table (another worker
rendered it), or rendered here with espeak-ng and sox and stored for the rest
of the fleet. Anything that fails raises :class:`PromptUnavailable`, and the
caller then places no call: a call whose prompt cannot play would be silent.

Cache files are written to a temporary name and renamed, so a process never
plays half a file another process is still writing.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from shared.errors import RetryableError
from shared.flow.model import Flow, Step
from shared.flow.validate import placeholders, render_text
from shared.flow.wav import WavProblem, check_wav

RENDER_TIMEOUT_S = 20.0
RENDERER = "espeak-ng+sox/8k"  # part of a say prompt's hash: a new renderer makes new files


class PromptUnavailable(RetryableError):
    """A prompt this worker cannot get: the call is not placed, the job goes back, the campaign is flagged."""


class PromptSource(Protocol):
    """Where prompts live beyond this host (the ``prompts`` table, or a flow file's own WAVs)."""

    def fetch(self, sha: str) -> bytes | None: ...

    def store_rendered(self, sha: str, voice: str, text: str, audio: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class MemorySource:
    """Prompts from a loaded flow file (``dialer call --flow``): nothing is shared, nothing stored."""

    wavs: Mapping[str, bytes]

    def fetch(self, sha: str) -> bytes | None:
        return self.wavs.get(sha)

    def store_rendered(self, sha: str, voice: str, text: str, audio: bytes) -> None:
        return None


def say_hash(voice: str, text: str) -> str:
    return hashlib.sha256(f"{RENDERER}\0{voice}\0{text}".encode()).hexdigest()


def render_say(text: str, voice: str, *, run: Callable[..., object] = subprocess.run) -> bytes:
    """``text`` spoken by espeak-ng in ``voice``, as 8 kHz mono 16-bit PCM (sox resamples)."""
    with tempfile.TemporaryDirectory(prefix="dialer-say-") as tmp:
        raw, out = Path(tmp) / "raw.wav", Path(tmp) / "out.wav"
        try:
            run(["espeak-ng", "-v", voice, "-w", str(raw), "--", text], check=True, capture_output=True,
                timeout=RENDER_TIMEOUT_S)
            run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(out)],
                check=True, capture_output=True, timeout=RENDER_TIMEOUT_S)
            return out.read_bytes()
        except (OSError, subprocess.SubprocessError) as exc:
            raise PromptUnavailable(f"cannot render say text with espeak-ng/sox: {exc}") from None


class PromptCache:
    """``DATA_DIR/prompts/<sha256>.wav``, filled from a source."""

    def __init__(self, data_dir: Path) -> None:
        self.folder = Path(data_dir) / "prompts"

    def path(self, sha: str) -> Path:
        return self.folder / f"{sha}.wav"

    def put(self, sha: str, audio: bytes) -> Path:
        target = self.path(sha)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".part-", suffix=".wav")
            with os.fdopen(fd, "wb") as out:
                out.write(audio)
            os.replace(tmp, target)
        except OSError as exc:
            raise PromptUnavailable(f"cannot write the prompt cache {self.folder}: {exc.strerror or exc}") from None
        return target

    def get(self, sha: str, source: PromptSource, what: str) -> Path:
        """The cached file, fetching it from ``source`` when this host has not got it yet."""
        target = self.path(sha)
        if target.is_file():
            return target
        audio = source.fetch(sha)
        if audio is None:
            raise PromptUnavailable(f"{what}: prompt {sha[:12]} is in no prompt store this worker can reach")
        try:
            check_wav(audio)
        except WavProblem as exc:
            raise PromptUnavailable(f"{what}: stored prompt {sha[:12]} is unusable: {exc}") from None
        return self.put(sha, audio)


def resolve_prompts(
    flow: Flow, values: Mapping[str, object], cache: PromptCache, source: PromptSource,
    *, render: Callable[[str, str], bytes] = render_say,
) -> dict[str, str]:
    """Step id -> local WAV path for every step that plays a prompt; PromptUnavailable if any is missing."""
    paths: dict[str, str] = {}
    for sid, step in flow.steps.items():
        if step.prompt_kind == "play":
            if step.wav_sha256 is None:
                raise PromptUnavailable(f"step {sid!r}: the flow names no stored WAV for {step.prompt!r}")
            paths[sid] = str(cache.get(step.wav_sha256, source, f"step {sid!r}"))
        elif step.prompt_kind == "say":
            paths[sid] = str(_say_path(step, values, cache, source, render))
    return paths


def _say_path(step: Step, values: Mapping[str, object], cache: PromptCache, source: PromptSource,
              render: Callable[[str, str], bytes]) -> Path:
    missing = [n for n in placeholders(step) if n not in values]
    if missing:
        raise PromptUnavailable(f"step {step.id!r}: the job has no column {missing[0]!r} for its say text")
    text = render_text(step, values)
    sha = say_hash(step.voice, text)
    try:
        return cache.get(sha, source, f"step {step.id!r}")
    except PromptUnavailable:
        pass  # nobody rendered it yet
    audio = render(text, step.voice)
    path = cache.put(sha, audio)
    source.store_rendered(sha, step.voice, text, audio)
    return path
