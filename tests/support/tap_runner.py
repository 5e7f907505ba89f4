"""Run :mod:`tests.support.tap_harness` against a sipp callee that plays a given audio file as RTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.sipp import SippFactory

ROOT = Path(__file__).resolve().parents[2]


def write_ulaw(pcm16: bytes, sipp_dir: Path) -> None:
    """Encode 8 kHz PCM16 as raw G.711 µ-law into ``callee.ulaw``, the file play_audio.xml streams."""
    sipp_dir.mkdir(parents=True, exist_ok=True)
    fmt = ["-t", "raw", "-r", "8000", "-c", "1"]
    ulaw = subprocess.run(["sox", "-D", "-R", *fmt, "-e", "signed", "-b", "16", "-", *fmt, "-e", "u-law", "-"],
                          input=pcm16, check=True, capture_output=True).stdout
    (sipp_dir / "callee.ulaw").write_bytes(ulaw)


def run_harness(
    sipp_uas: SippFactory, tmp_path: Path, pcm16: bytes | None, mode: str, *extra: str,
    scenario: str = "play_audio", sipp_args: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Start sipp (playing ``pcm16`` when given), run the harness in a subprocess, return its JSON result."""
    if pcm16 is not None:
        write_ulaw(pcm16, tmp_path / "sipp")
    peer = sipp_uas(scenario, trace=False, extra_args=sipp_args)
    out = tmp_path / f"{mode}.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.support.tap_harness", "--uri", f"sip:callee@{peer.address}",
         "--mode", mode, "--out", str(out), *extra],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=110,
    )
    assert proc.returncode == 0, f"harness exited {proc.returncode}: {proc.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(out.read_text())
    assert "error" not in result, result["error"]
    return result
