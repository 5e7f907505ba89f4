"""Early media: a carrier announcement in a 183 makes the unanswered attempt ``machine``; ringback does not.

sipp plays the corpus's early-media announcement ("您拨打的电话已关机...") as
RTP after a 183 and then refuses with 480. The worker runs ``dialer call
--flow`` with a flow that starts with ``amd``, so the SIP runtime taps the
ringing call's audio (worker/sip/early_media.py): the attempt is ``machine``
(tried again later) instead of ``no_answer``. With plain ringback in the 183
the same refusal stays ``no_answer``. The call is never cancelled early.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.support.amd_corpus import load_corpus
from tests.support.baresip import write_tone
from tests.support.sipp import SippPeer
from tests.support.tap_runner import write_ulaw

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NUMBER = "13900001111"  # fictional
Sipp = Callable[..., SippPeer]
FLOW = """
start = "detect"
[steps.detect]
amd = {}
branches = { human = "offer", machine = "bye" }
[steps.offer]
play = "offer.wav"
[steps.bye]
hangup = true
"""


def _announcement() -> bytes:
    """The corpus's early media cut to one ring and 6 s of the message (23 s as made: two rings, then it)."""
    item = next(it for it in load_corpus(24) if it.kind == "carrier_early")
    pcm, second = item.early_pcm(), 8000 * 2
    return pcm[: 6 * second] + pcm[12 * second : 18 * second]


def _ringback(seconds: float = 6.0) -> bytes:
    """450 Hz, 1 s on and 4 s off, as Chinese ringback."""
    t = np.arange(int(seconds * 8000)) / 8000
    on = (t % 5.0) < 1.0
    return (on * 8000 * np.sin(2 * np.pi * 450 * t)).astype("<i2").tobytes()


def _call(sipp_uas: Sipp, tmp_path: Path, early: bytes) -> dict[str, object]:
    write_ulaw(early, tmp_path / "sipp")
    seconds = len(early) / 16000
    peer = sipp_uas("early_announcement", pause_ms=int(seconds * 1000) + 500, trace=False)
    flows = tmp_path / "flows"
    flows.mkdir()
    write_tone(flows / "offer.wav", 1.0, 440.0)
    (flows / "amd.toml").write_text(FLOW, encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith("DIALER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(DIALER_SIP_REGISTRAR=peer.address, DIALER_SIP_REGISTER="false", DIALER_SIP_USERNAME="dialer",
               DIALER_SIP_VARIANT_ORDER="+86", DIALER_DATA_DIR=str(tmp_path / "data"))
    done = subprocess.run([sys.executable, "-c", "from shared.cli import main; main()", "call", NUMBER, "--flow",
                           str(flows / "amd.toml"), "--ring-timeout", "30", "--json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=90, check=False)
    report: dict[str, object] = json.loads(done.stdout)
    return report


def test_an_announcement_before_a_refusal_is_a_machine(sipp_uas: Sipp, tmp_path: Path) -> None:
    """183 + "the subscriber is powered off" + 480: the attempt's outcome is machine, not no_answer."""
    report = _call(sipp_uas, tmp_path, _announcement())
    attempts = report["attempts"]
    assert isinstance(attempts, list) and attempts[-1]["status"] == 480, report
    assert report["outcome"] == "machine", report


def test_ringback_before_a_refusal_stays_no_answer(sipp_uas: Sipp, tmp_path: Path) -> None:
    """183 + ringback tones + 480: nothing was said, so it is the usual no_answer."""
    report = _call(sipp_uas, tmp_path, _ringback())
    assert report["outcome"] == "no_answer", report
