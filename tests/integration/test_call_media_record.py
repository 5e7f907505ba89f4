"""Recording an answered call with pjsua2's recorder, against baresip as the callee.

baresip sends a 440 Hz tone; the script plays a 1 kHz prompt. Mode ``call``
mixes both directions, mode ``message`` keeps only the callee. A recording is
reported only once its WAV is whole; ``max_s`` ends it on its own; a
directory that cannot be written is reported as ``recording_failed`` while the
call goes on. Also here: the callee hanging up mid-prompt, with how much of
the prompt was played.
"""

from __future__ import annotations

import subprocess
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.answer_scripts import ScriptedTest
from tests.support.baresip import BaresipCallee, loud_span, read_wav, start_baresip_callee, write_tone
from tests.support.needs import unavailable
from tests.support.sipp import SippPeer, free_port
from worker.sip import SipAccountConfig, SipAgent
from worker.sip.answer import MediaControl

pytestmark = pytest.mark.integration
Sipp = Callable[..., SippPeer]


@pytest.fixture
def callee_440(tmp_path: Path) -> Iterator[BaresipCallee]:
    peer = start_baresip_callee(tmp_path / "baresip", source_hz=440.0)
    yield peer
    peer.stop()


def agent_for(registrar: str) -> SipAgent:
    agent = SipAgent(SipAccountConfig(registrar=registrar, username="dialer", password="unused", register=False))
    agent.start()
    return agent


def band_energy(path: Path, hz: float) -> float:
    """Share of the recording's spectral energy within 20 Hz of ``hz``."""
    with wave.open(str(path), "rb") as wav:
        rate = wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(np.float64)
    power = np.abs(np.fft.rfft(samples)) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    return float(power[np.abs(freqs - hz) < 20].sum() / power.sum())


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


def record_while_prompting(
    callee: BaresipCallee, tmp_path: Path, path: Path, mode: str, max_s: float
) -> tuple[ScriptedTest, Path]:
    prompt = write_tone(tmp_path / "prompt.wav", 2.0, 1000.0)

    def answer(ctl: MediaControl) -> None:
        ctl.start_recording(str(path), mode, max_s)  # type: ignore[arg-type]
        ctl.play(str(prompt))

    def until(s: ScriptedTest) -> bool:
        assert s.ctl is not None
        if s.ctl.play_state()[1] and not s.recordings and max_s > 5:
            s.ctl.stop_recording()
        return bool(s.recordings)

    script = ScriptedTest(on_answer_do=answer, until=_stop_recording_after_prompt)
    agent = agent_for(callee.address)
    try:
        result = agent.call(callee.uri(), timeout_s=30, script_factory=lambda: script)
    finally:
        agent.stop(grace_s=0)
    assert result.answered and not script.timed_out
    return script, prompt


def _stop_recording_after_prompt(s: ScriptedTest) -> bool:
    """Stop the recorder once the prompt has played; done when the recording was reported."""
    assert s.ctl is not None
    if s.ctl.play_state()[1] and not s.recordings:
        s.ctl.stop_recording()
    return bool(s.recordings)


def test_call_recording_mixes_both_directions(callee_440: BaresipCallee, tmp_path: Path) -> None:
    """Mode call: the WAV holds the callee's 440 Hz and our 1 kHz prompt, reported whole after stop."""
    path = tmp_path / "rec" / "call.wav"
    path.parent.mkdir()
    script, _ = record_while_prompting(callee_440, tmp_path, path, "call", 30.0)
    assert script.recordings == [(str(path), None)]
    assert band_energy(path, 440.0) > 0.1 and band_energy(path, 1000.0) > 0.1
    assert 1.8 <= wav_seconds(path) <= 3.0


def test_message_recording_keeps_only_the_callee(callee_440: BaresipCallee, tmp_path: Path) -> None:
    """Mode message: the callee's 440 Hz is there, our prompt is not."""
    path = tmp_path / "message.wav"
    script, _ = record_while_prompting(callee_440, tmp_path, path, "message", 30.0)
    assert script.recordings == [(str(path), None)]
    assert band_energy(path, 440.0) > 0.5 and band_energy(path, 1000.0) < 0.01


def test_max_s_ends_the_recording_on_its_own(callee_440: BaresipCallee, tmp_path: Path) -> None:
    """max_s = 1 during a 2 s prompt: the file is reported (whole) with about 1 s of audio."""
    path = tmp_path / "short.wav"
    script, _ = record_while_prompting(callee_440, tmp_path, path, "call", 1.0)
    assert script.recordings == [(str(path), None)]
    assert 0.8 <= wav_seconds(path) <= 1.3


def test_unwritable_directory_is_reported_and_the_call_goes_on(callee_440: BaresipCallee, tmp_path: Path) -> None:
    """A recording path under a regular file: on_recording(None, recording_failed...), the prompt still plays."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    prompt = write_tone(tmp_path / "prompt.wav", 1.0, 1000.0)

    def answer(ctl: MediaControl) -> None:
        ctl.start_recording(str(blocker / "call.wav"), "call", 10.0)
        ctl.play(str(prompt))

    script = ScriptedTest(on_answer_do=answer, until=lambda s: s.ctl is not None and s.ctl.play_state()[1])
    agent = agent_for(callee_440.address)
    try:
        result = agent.call(callee_440.uri(), timeout_s=30, script_factory=lambda: script)
    finally:
        agent.stop(grace_s=0)
    assert result.answered and not script.timed_out and result.flow is not None and "error" not in result.flow
    [(path, error)] = script.recordings
    assert path is None and error is not None and error.startswith("recording_failed: ")
    assert str(blocker) in error
    assert script.ctl is not None and script.ctl.play_state() == (pytest.approx(1.0, abs=0.06), True)


def test_callee_hanging_up_mid_prompt_says_how_much_was_played(sipp_uas: Sipp, tmp_path: Path) -> None:
    """The callee's BYE 1 s into a 3 s prompt: on_hangup("remote"), about 1 s played, not finished."""
    peer = sipp_uas("remote_bye", pause_ms=1000)
    prompt = write_tone(tmp_path / "prompt.wav", 3.0, 1000.0)
    script = ScriptedTest(on_answer_do=lambda ctl: ctl.play(str(prompt)))
    agent = agent_for(peer.address)
    try:
        result = agent.call(f"sip:callee@{peer.address}", timeout_s=30, script_factory=lambda: script)
    finally:
        agent.stop(grace_s=0)
    assert result.answered and result.hangup_by == "remote" and script.hangup == "remote"
    assert script.play_at_hangup is not None
    played, finished = script.play_at_hangup
    assert not finished and 0.5 <= played <= 2.0


@pytest.fixture
def full_dir(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: about two seconds of a 16 kHz recording fill it. Needs root (skips otherwise)."""
    where = tmp_path / "full"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        unavailable(f"cannot mount a small tmpfs here: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


def test_full_recordings_directory_is_reported_and_the_call_goes_on(
    callee_440: BaresipCallee, tmp_path: Path, full_dir: Path
) -> None:
    """The disk fills 2 s into a 4 s recording: on_recording gives the partial file and recording_failed."""
    prompt = write_tone(tmp_path / "prompt.wav", 4.0, 1000.0)
    path = full_dir / "call.wav"

    def answer(ctl: MediaControl) -> None:
        ctl.start_recording(str(path), "call", 30.0)
        ctl.play(str(prompt))

    script = ScriptedTest(on_answer_do=answer, until=_stop_recording_after_prompt)
    agent = agent_for(callee_440.address)
    try:
        result = agent.call(callee_440.uri(), timeout_s=30, script_factory=lambda: script)
    finally:
        agent.stop(grace_s=0)
    assert result.answered and not script.timed_out and result.flow is not None and "error" not in result.flow
    assert script.ctl is not None and script.ctl.play_state() == (pytest.approx(4.0, abs=0.06), True)
    [(reported, error)] = script.recordings
    assert reported == str(path)
    assert error is not None and error.startswith("recording_failed: ") and "disk full" in error


def test_prompt_and_recording_follow_a_reinvite_that_replaces_the_stream(sipp_uas: Sipp, tmp_path: Path) -> None:
    """sipp echoes our audio and re-INVITEs to PCMA 0.8 s into a 3 s prompt: the whole prompt's echo is recorded."""
    peer = sipp_uas("reinvite_codec", pause_ms=800, extra_args=["-rtp_echo", "-mp", str(free_port())])
    prompt = write_tone(tmp_path / "prompt.wav", 3.0, 1000.0)
    path = tmp_path / "echo.wav"

    def answer(ctl: MediaControl) -> None:
        ctl.start_recording(str(path), "message", 30.0)  # the callee only: here, the echo of our prompt
        ctl.play(str(prompt))

    script = ScriptedTest(on_answer_do=answer, until=_stop_recording_after_prompt)
    agent = agent_for(peer.address)
    try:
        result = agent.call(f"sip:callee@{peer.address}", timeout_s=30, script_factory=lambda: script)
    finally:
        agent.stop(grace_s=0)
    assert result.answered and not script.timed_out
    answers = [m.status for m in peer.messages() if m.direction == "rx" and m.cseq_method == "INVITE" and m.status]
    assert answers == [200]  # the re-INVITE was accepted
    assert script.recordings == [(str(path), None)]
    samples, rate = read_wav(path)
    span_s, quiet_frames = loud_span(samples, rate)
    assert 2.7 <= span_s <= 3.3 and quiet_frames <= 5  # a re-INVITE may cost a frame or two, not the rest
