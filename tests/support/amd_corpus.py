"""The answering-machine corpus made by ``scripts/make-amd-corpus``: generate (cached) and read it.

Tests ask for a small prefix (a dozen items, a few seconds to make once);
``bench/bench_amd.py`` for the full set. Both share one cache directory per
seed, so what one made the other reuses.
"""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make-amd-corpus"


@dataclass(frozen=True)
class CorpusItem:
    name: str
    kind: str  # human, voicemail, carrier, carrier_early
    label: str  # human or machine
    wav: Path | None  # audio after the answer
    early_wav: Path | None  # early media before it
    meta: dict[str, Any]

    def pcm(self) -> bytes:
        assert self.wav is not None, f"{self.name} has no post-answer audio"
        return read_pcm(self.wav)

    def early_pcm(self) -> bytes:
        assert self.early_wav is not None, f"{self.name} has no early media"
        return read_pcm(self.early_wav)


def read_pcm(path: Path) -> bytes:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000), path
        return w.readframes(w.getnframes())


def load_corpus(count: int, seed: int = 15, out: Path | None = None) -> list[CorpusItem]:
    """Make (or reuse) the first ``count`` items and return them in order."""
    cmd = [sys.executable, str(SCRIPT), "--count", str(count), "--seed", str(seed)]
    if out is not None:
        cmd += ["--out", str(out)]
    folder = Path(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip())
    items = json.loads((folder / "manifest.json").read_text())["items"][:count]
    return [
        CorpusItem(
            name=it["name"], kind=it["kind"], label=it["label"],
            wav=folder / it["wav"] if "wav" in it else None,
            early_wav=folder / it["early_wav"] if "early_wav" in it else None,
            meta=it,
        )
        for it in items
    ]
