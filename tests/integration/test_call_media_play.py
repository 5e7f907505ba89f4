"""A call flow's prompt reaches a real callee: pjsua2 plays a WAV, baresip records what it hears.

baresip (a third-party SIP phone) answers and writes the audio it receives to
a WAV; the test checks its dominant frequency, its length and that the tone
arrived without a gap. baresip's answer offers two codecs, so pjsua re-INVITEs
to settle on one and the call's bridge port is replaced mid-prompt: the
prompt must follow it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.support.baresip import BaresipCallee, baresip_callee, dominant_hz, loud_span, read_wav, write_tone
from worker.sip import SipAccountConfig, SipAgent
from worker.sip.answer import HangupSide, MediaControl

pytestmark = pytest.mark.integration
__all__ = ["baresip_callee"]


class PlayThenHangUp:
    """Plays one WAV; hangs up when it has finished."""

    def __init__(self, wav: Path) -> None:
        self.wav = wav
        self.ctl: MediaControl | None = None
        self.finished = False
        self.hangup: HangupSide | None = None
        self.played_s = 0.0

    def on_answer(self, ctl: MediaControl, now: float) -> None:
        self.ctl = ctl
        ctl.play(str(self.wav))

    def on_tick(self, now: float) -> None:
        assert self.ctl is not None
        self.played_s, self.finished = self.ctl.play_state()

    def on_dtmf(self, digit: str, now: float) -> None: ...

    def on_transfer(self, status: int, final: bool, now: float) -> None: ...

    def on_recording(self, path: str | None, error: str | None, now: float) -> None: ...

    def on_hangup(self, by: HangupSide, now: float) -> None:
        self.hangup = by

    def done(self) -> bool:
        return self.finished

    def report(self) -> Mapping[str, object]:
        assert self.ctl is not None
        return {"played_s": self.played_s, "first_audio_sent_s": self.ctl.first_audio_sent_s}


@pytest.fixture
def agent(baresip_callee: BaresipCallee) -> Iterator[SipAgent]:
    sip = SipAgent(SipAccountConfig(registrar=baresip_callee.address, username="dialer", password="unused",
                                    register=False))
    sip.start()
    yield sip
    sip.stop(grace_s=0)


@pytest.mark.parametrize("seconds", [2.0, 1.2345])  # 1.2345 s: data that is no whole number of read buffers
def test_prompt_tone_reaches_the_callee_whole(
    agent: SipAgent, baresip_callee: BaresipCallee, tmp_path: Path, seconds: float
) -> None:
    """A 1 kHz prompt is heard by baresip as 1 kHz for its length with no silent gap; it finishes; we hang up."""
    wav = write_tone(tmp_path / "prompt.wav", seconds, 1000.0)
    script = PlayThenHangUp(wav)
    result = agent.call(baresip_callee.uri(), timeout_s=30, script_factory=lambda: script)
    baresip_callee.stop()  # the recording's header is written when baresip closes it
    assert result.answered and result.hangup_by == "local" and script.hangup == "local"
    assert result.flow is not None and "error" not in result.flow
    assert script.finished and script.played_s == pytest.approx(seconds, abs=0.06)
    first_audio = result.flow["first_audio_sent_s"]
    assert isinstance(first_audio, float) and first_audio >= 0.0
    [heard] = baresip_callee.recordings()
    samples, rate = read_wav(heard)
    span_s, quiet_frames = loud_span(samples, rate)
    assert dominant_hz(samples, rate) == pytest.approx(1000.0, abs=10.0)
    assert seconds - 0.2 <= span_s <= seconds + 0.1
    assert quiet_frames == 0


class Raising(PlayThenHangUp):
    """Raises in on_tick: the runtime must hang up and report, not die."""

    def on_tick(self, now: float) -> None:
        raise RuntimeError("a bug in the flow")


def test_a_script_that_raises_is_hung_up_and_reported(
    agent: SipAgent, baresip_callee: BaresipCallee, tmp_path: Path
) -> None:
    """The script's exception ends the call (BYE from us), lands in flow["error"], and the agent keeps working."""
    wav = write_tone(tmp_path / "prompt.wav", 1.0, 1000.0)
    result = agent.call(baresip_callee.uri(), timeout_s=30, script_factory=lambda: Raising(wav))
    assert result.answered and result.hangup_by == "local"
    assert result.flow is not None and result.flow["error"] == "on_tick: RuntimeError: a bug in the flow"
    script = PlayThenHangUp(wav)
    again = agent.call(baresip_callee.uri(), timeout_s=30, script_factory=lambda: script)
    assert again.answered and script.finished and again.flow is not None and "error" not in again.flow
