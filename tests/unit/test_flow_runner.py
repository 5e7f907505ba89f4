"""The flow runner against a scripted MediaControl: engine actions become media calls, callbacks become events."""

from __future__ import annotations

import hashlib
import wave
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from shared.flow import parse_flow, validate_flow
from tests.support.flows import tone_wav
from worker.flow_runner import FlowScript
from worker.prompts import MemorySource, PromptCache, PromptUnavailable, render_say, resolve_prompts
from worker.sip.answer import MediaError

FLOW = validate_flow(parse_flow({"start": "offer", "steps": {
    "offer": {"say": "Hello {name}", "next": "menu"},
    "menu": {"gather": {"num_digits": 1, "timeout_s": 3}, "play": "menu.wav",
             "branches": {"1": "agent", "9": "optout"}},
    "agent": {"transfer": "sip:agent@127.0.0.1", "on_failure": "bye"},
    "optout": {"opt_out": True, "next": "bye"},
    "bye": {"hangup": True},
}}))


@dataclass
class Media:
    """A MediaControl that records what the script asked and reports a prompt position we set."""

    calls: list[tuple[str, ...]] = field(default_factory=list)
    position: float = 0.0
    finished: bool = False
    first_audio_sent_s: float | None = 0.03

    def play(self, wav_path: str) -> None:
        self.calls.append(("play", wav_path))
        self.position, self.finished = 0.0, False

    def stop_play(self) -> None:
        self.calls.append(("stop_play",))

    def play_state(self) -> tuple[float, bool]:
        return self.position, self.finished

    def transfer(self, target_uri: str, mode: str) -> None:
        self.calls.append(("transfer", target_uri, mode))

    def start_recording(self, path: str, mode: str, max_s: float) -> None:
        self.calls.append(("record", mode))

    def stop_recording(self) -> None:
        self.calls.append(("stop_recording",))

    def hangup(self) -> None:
        self.calls.append(("hangup",))


def test_a_call_through_the_runner() -> None:
    """Prompt plays, barge-in stops the menu, a REFER 200 ends the flow; the report has the issue's shape."""
    opted: list[bool] = []
    script = FlowScript(FLOW, {"offer": "/p/offer.wav", "menu": "/p/menu.wav"}, on_opt_out=lambda: opted.append(True))
    media = Media()
    script.on_answer(media, 100.0)
    media.position, media.finished = 2.0, True
    script.on_tick(102.0)
    media.position = 0.5
    script.on_tick(102.5)
    script.on_dtmf("1", 102.6)
    script.on_transfer(200, True, 103.0)
    assert media.calls == [("play", "/p/offer.wav"), ("play", "/p/menu.wav"), ("stop_play",),
                           ("transfer", "sip:agent@127.0.0.1", "refer"), ("hangup",)]
    assert script.done() and not opted
    report = script.report()
    assert report["outcome"] == "transferred" and report["digits"] == "1" and report["transfer_status"] == 200
    steps = report["steps"]
    assert isinstance(steps, list)
    assert [(s["step"], s["action"], s["result"]) for s in steps] == [
        ("offer", "say", "played"), ("menu", "gather", "matched"), ("agent", "transfer", "transferred")]
    assert steps[1]["digits"] == "1" and steps[1]["played_s"] == 0.5 and steps[0]["at_s"] == 2.0


def test_opt_out_is_handed_off_and_a_remote_hangup_mid_prompt_is_logged() -> None:
    """9 queues the opt-out; a BYE during a prompt logs how much of it was heard."""
    opted: list[bool] = []
    script = FlowScript(FLOW, {"offer": "/o", "menu": "/m"}, on_opt_out=lambda: opted.append(True))
    media = Media()
    script.on_answer(media, 0.0)
    media.position = 1.25
    script.on_hangup("remote", 1.3)
    assert script.done() and script.report()["steps"] == [
        {"step": "offer", "action": "say", "result": "remote_hangup", "at_s": 1.3, "played_s": 1.25}]
    script = FlowScript(FLOW, {"offer": "/o", "menu": "/m"}, on_opt_out=lambda: opted.append(True))
    media = Media()
    script.on_answer(media, 0.0)
    media.finished = True
    script.on_tick(1.0)
    script.on_dtmf("9", 1.5)
    assert opted == [True] and script.report()["outcome"] == "opted_out"


class NoSlotMedia(Media):
    """A worker whose every call slot is taken: the bridged leg cannot even start."""

    def transfer(self, target_uri: str, mode: str) -> None:
        self.calls.append(("transfer", target_uri, mode))
        raise MediaError("no free call slot for the bridged call (4 in use)")


def test_a_transfer_that_cannot_start_takes_on_failure() -> None:
    """A transfer refused before any request left (no slot for the bridged leg) runs on_failure; the call is not
    dropped by the runtime with nothing said, and the report says why."""
    flow = validate_flow(parse_flow({"start": "agent", "steps": {
        "agent": {"transfer": "sip:agent@127.0.0.1", "mode": "bridge", "on_failure": "sorry"},
        "sorry": {"play": "sorry.wav", "next": "bye"},
        "bye": {"hangup": True},
    }}))
    script = FlowScript(flow, {"sorry": "/p/sorry.wav"}, on_opt_out=lambda: None)
    media = NoSlotMedia()
    script.on_answer(media, 0.0)
    assert media.calls == [("transfer", "sip:agent@127.0.0.1", "bridge"), ("play", "/p/sorry.wav")]
    report = script.report()
    steps = report["steps"]
    assert isinstance(steps, list)
    assert (steps[0]["action"], steps[0]["result"], steps[0]["status"]) == ("transfer", "failed", 503)
    assert report["errors"] == ["transfer: no free call slot for the bridged call (4 in use)"]


def test_prompts_are_rendered_once_and_cached_by_hash(tmp_path: Path) -> None:
    """A say text with a placeholder renders per distinct value with espeak-ng, 8 kHz mono, then comes from cache."""
    wav = tone_wav(0.5)
    flow = validate_flow(parse_flow({"start": "offer", "steps": {
        "offer": {"say": "Hello {name}", "voice": "cmn", "next": "menu"},
        "menu": {"play": "menu.wav"}}}))
    sha = hashlib.sha256(wav).hexdigest()
    flow = replace(flow, steps={**flow.steps, "menu": replace(flow.steps["menu"], wav_sha256=sha)})
    renders: list[str] = []

    def counting_render(text: str, voice: str) -> bytes:
        renders.append(text)
        return render_say(text, voice)

    cache = PromptCache(tmp_path)
    source = MemorySource({sha: wav})
    first = resolve_prompts(flow, {"name": "李雷"}, cache, source, render=counting_render)
    again = resolve_prompts(flow, {"name": "李雷"}, cache, source, render=counting_render)
    other = resolve_prompts(flow, {"name": "Han Meimei"}, cache, source, render=counting_render)
    assert first == again and first["offer"] != other["offer"] and renders == ["Hello 李雷", "Hello Han Meimei"]
    with wave.open(first["offer"], "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000) and w.getnframes() > 4000
    assert Path(first["menu"]).read_bytes() == wav


def test_a_prompt_nobody_has_is_unavailable(tmp_path: Path) -> None:
    """A play step whose WAV is in no store raises PromptUnavailable (the caller then places no call)."""
    flow = validate_flow(parse_flow({"start": "m", "steps": {"m": {"play": "m.wav"}}}))
    flow = replace(flow, steps={"m": replace(flow.steps["m"], wav_sha256="0" * 64)})
    with pytest.raises(PromptUnavailable, match="step 'm'"):
        resolve_prompts(flow, {}, PromptCache(tmp_path), MemorySource({}))
