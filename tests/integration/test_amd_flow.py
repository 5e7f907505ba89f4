"""The ``amd`` and ``voicemail_drop`` steps in the real worker: corpus audio over RTP/G.711 from a real phone.

baresip (a third-party SIP phone) answers ``dialer call NUMBER --flow F
--json`` and plays a corpus item as its outgoing audio while recording what
it hears. The worker's flow starts with ``amd``: a person's "Hello?" takes the
human branch (an offer tone plays); a voicemail greeting takes the machine
branch, whose ``voicemail_drop`` waits for the box's beep and then plays the
message, and the phone's recording shows the message whole and after the
beep, where a voicemail box would record it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support.amd_phone import ITEMS, NUMBER, answering_phone
from tests.support.baresip import BaresipCallee, dominant_hz, write_tone
from tests.support.rtp_capture import capture, free_port_range, rtp_packets

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
OFFER_HZ, MESSAGE_HZ, MESSAGE_S = 440.0, 600.0, 2.0
FLOW = """
start = "detect"

[steps.detect]
amd = {}
branches = { human = "offer", machine = "drop" }

[steps.offer]
play = "offer.wav"
next = "bye"

[steps.drop]
voicemail_drop = { max_wait_s = 20 }
play = "message.wav"
next = "bye"

[steps.bye]
hangup = true
"""


def _dial(workdir: Path, callee: BaresipCallee) -> dict[str, object]:
    flows = workdir / "flows"
    flows.mkdir(parents=True)
    write_tone(flows / "offer.wav", 1.5, OFFER_HZ)
    write_tone(flows / "message.wav", MESSAGE_S, MESSAGE_HZ)
    (flows / "amd.toml").write_text(FLOW, encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith("DIALER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(DIALER_SIP_REGISTRAR=callee.address, DIALER_SIP_REGISTER="false", DIALER_SIP_USERNAME="dialer",
               DIALER_SIP_VARIANT_ORDER="+86",
               DIALER_DATA_DIR=str(workdir / "data"))
    done = subprocess.run([sys.executable, "-c", "from shared.cli import main; main()", "call", NUMBER, "--flow",
                           str(flows / "amd.toml"), "--json"], cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=90, check=False)
    assert done.returncode == 0, (done.stdout, done.stderr[-3000:], callee.log()[-2000:])
    report: dict[str, object] = json.loads(done.stdout)
    return report


def _tone_frames(samples: np.ndarray, hz: float) -> bool:
    """A loud 20 ms packet whose dominant frequency is ``hz``."""
    return bool(np.sqrt((samples**2).mean()) > 1000 and abs(dominant_hz(samples, 8000) - hz) <= 25)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def test_a_person_takes_the_human_branch(workdir: Path) -> None:
    """"Hello?" over RTP: the amd entry says human (with its reason and time), and the offer is played."""
    callee = answering_phone(workdir / "baresip", ITEMS["human"])
    try:
        report = _dial(workdir, callee)
    finally:
        with contextlib.suppress(Exception):
            callee.stop()
    steps = report["flow"]
    assert isinstance(steps, list)
    amd = steps[0]
    assert (amd["step"], amd["action"], amd["decision"]) == ("detect", "amd", "human"), (report, ITEMS["human"].meta)
    assert amd["reason"] and 0 < amd["decided_at_s"] <= 5.0
    assert [(s["step"], s["result"]) for s in steps[1:]] == [("offer", "played"), ("bye", "hangup")]
    verdict = report["amd"]
    assert isinstance(verdict, dict) and verdict["decision"] == "human"  # also at the top of --json
    assert report["outcome"] == "message_played"


def test_a_voicemail_box_gets_the_whole_message_after_its_beep(workdir: Path) -> None:
    """A greeting over RTP: machine branch; on the wire, the message reaches the phone after the beep has ended
    (times from the phone's first packet, which carries the greeting's start) and arrives whole."""
    item = ITEMS["voicemail"]
    low = free_port_range(4)
    with capture(workdir / "rtp.pcapng", low, low + 3) as pcap:
        callee = answering_phone(workdir / "baresip", item, rtp_ports=(low, low + 3))
        try:
            report = _dial(workdir, callee)
        finally:
            with contextlib.suppress(Exception):
                callee.stop()
    steps = report["flow"]
    assert isinstance(steps, list)
    amd, drop = steps[0], steps[1]
    assert amd["decision"] == "machine" and amd["decided_at_s"] <= 5.0, (steps, item.meta)
    assert (drop["step"], drop["action"], drop["result"], drop["heard"]) == ("drop", "voicemail_drop", "played",
                                                                             "beep"), steps
    assert report["outcome"] == "voicemail_left"
    packets = rtp_packets(pcap)
    sent = [p for p in packets if low <= p.src_port <= low + 3]  # the phone's greeting
    heard = [p for p in packets if low <= p.dst_port <= low + 3]  # what reached the phone
    assert sent and heard, len(packets)
    message = [p for p in heard if _tone_frames(p.audio, MESSAGE_HZ)]
    beep_end = sent[0].at + item.meta["beep_at_s"] + item.meta["beep_s"]
    assert message, "the message never reached the phone"
    assert message[0].at >= beep_end, (message[0].at - sent[0].at, beep_end - sent[0].at, drop)
    assert len(message) * 0.02 >= MESSAGE_S - 0.1, len(message)
