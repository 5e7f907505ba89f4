"""The call's one audio tap, taken through MediaControl: it follows a re-INVITE and is freed at the call's end.

sipp echoes our audio and re-INVITEs to PCMA 0.8 s into a 3 s prompt, which
makes pjsua replace the call's stream and bridge port. A script takes the tap
(``ctl.audio_tap()``, as the ``amd`` step does) and reads it on the SIP thread
every loop turn: the prompt's echo must keep arriving after the re-INVITE
(CallMedia rebinds the tap), a second ask must return the same tap, and once
the call has ended the tap's port is gone (detached on the SIP thread).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.support.answer_scripts import ScriptedTest
from tests.support.baresip import write_tone
from tests.support.sipp import SippPeer, free_port
from worker.sip import SipAccountConfig, SipAgent
from worker.sip.answer import AudioFrames, MediaControl

pytestmark = pytest.mark.integration
Sipp = Callable[..., SippPeer]


def test_the_tap_follows_a_reinvite_and_is_freed_at_the_end(sipp_uas: Sipp, tmp_path: Path) -> None:
    """Echo of a 3 s prompt read through the tap: loud for about 3 s across the re-INVITE; one tap per call."""
    peer = sipp_uas("reinvite_codec", pause_ms=800, extra_args=["-rtp_echo", "-mp", str(free_port())])
    prompt = write_tone(tmp_path / "prompt.wav", 3.0, 1000.0)
    taps: list[AudioFrames] = []
    frames: list[bytes] = []

    def answer(ctl: MediaControl) -> None:
        taps.append(ctl.audio_tap())
        taps.append(ctl.audio_tap())  # the same tap: one per call
        ctl.play(str(prompt))

    def until(s: ScriptedTest) -> bool:
        assert s.ctl is not None
        frames.extend(taps[0].read())
        return s.ctl.play_state()[1]

    script = ScriptedTest(on_answer_do=answer, until=until)
    agent = SipAgent(SipAccountConfig(registrar=peer.address, username="dialer", password="unused", register=False))
    agent.start()
    try:
        result = agent.call(f"sip:callee@{peer.address}", timeout_s=30, script_factory=lambda: script)
    finally:
        agent.stop(grace_s=0)
    assert result.answered and not script.timed_out
    answers = [m.status for m in peer.messages() if m.direction == "rx" and m.cseq_method == "INVITE" and m.status]
    assert answers == [200]  # the re-INVITE was accepted: the stream was replaced mid-prompt
    assert taps[0] is taps[1]
    assert not taps[0].attached  # type: ignore[attr-defined]  # detached when the call ended
    levels = [float(np.abs(np.frombuffer(f, dtype="<i2")).mean()) for f in frames]
    loud = [lv > 1000 for lv in levels]
    assert 2.6 <= sum(loud) * 0.02 <= 3.3, sum(loud)
    first, last = loud.index(True), len(loud) - 1 - loud[::-1].index(True)
    assert sum(1 for x in loud[first : last + 1] if not x) <= 5  # a re-INVITE may cost a frame or two
    assert taps[0].stats()["errors"] == 0
