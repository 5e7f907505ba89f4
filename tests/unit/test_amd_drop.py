"""When the voicemail message starts: after the beep has ended, or after the greeting fell silent; and the
runner's listener feeding the engine from a tap, frame by frame."""

from __future__ import annotations

import numpy as np
import pytest

from shared.amd import split_frames
from shared.amd_drop import DropSettings, VoicemailWaiter
from shared.flow import parse_flow, validate_flow
from tests.support.amd_corpus import load_corpus
from worker.flow_runner import FlowScript
from worker.sip.answer import MediaError

VOICEMAIL = [it for it in load_corpus(24) if it.kind == "voicemail"]


def _wait(frames: list[bytes], start_s: float) -> tuple[str, float] | None:
    waiter = VoicemailWaiter()
    skip = int(start_s / 0.02)
    for frame in frames[skip:]:
        heard = waiter.feed(frame)
        if heard is not None:
            return heard[0], start_s + heard[1]
    return None


@pytest.mark.parametrize("item", VOICEMAIL, ids=[it.name for it in VOICEMAIL])
def test_the_message_starts_as_the_beep_ends(item: object) -> None:
    """Listening from 2 s (after the amd decision), the waiter speaks within 0.1 s after the beep's end."""
    frames = split_frames(item.pcm())  # type: ignore[attr-defined]
    heard = _wait(frames, 2.0)
    beep_end = item.meta["beep_at_s"] + item.meta["beep_s"]  # type: ignore[attr-defined]
    assert heard is not None and heard[0] == "beep", heard
    assert beep_end - 0.02 <= heard[1] <= beep_end + 0.1, (heard, beep_end)


def test_a_greeting_with_no_beep_ends_in_silence() -> None:
    """Speech, then greeting_end_ms of quiet line noise: "silence", 2.5 s after the last word."""
    rng = np.random.default_rng(1)
    t = np.arange(8000 * 3) / 8000
    speech = (4000 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 300 * rng.standard_normal(t.size))
    quiet = 60 * rng.standard_normal(8000 * 4)
    pcm = np.concatenate([speech, quiet]).astype("<i2").tobytes()
    waiter = VoicemailWaiter(DropSettings(greeting_end_ms=2500))
    heard = next(h for f in split_frames(pcm) if (h := waiter.feed(f)) is not None)
    assert heard[0] == "silence" and 5.4 <= heard[1] <= 5.7


class _Tap:
    def __init__(self, pcm: bytes) -> None:
        self.frames = split_frames(pcm)

    def take(self, n: int) -> None:
        self.ready, self.frames = self.frames[:n], self.frames[n:]

    def read(self) -> list[bytes]:
        out, self.ready = getattr(self, "ready", []), []
        return out


class _Media:
    def __init__(self, tap: _Tap | None) -> None:
        self.tap = tap
        self.calls: list[tuple[str, ...]] = []
        self.first_audio_sent_s = None

    def audio_tap(self, *, send: bool = False) -> _Tap:
        if self.tap is None:
            raise MediaError("the call has no active audio stream to listen to")
        return self.tap

    def play(self, path: str) -> None:
        self.calls.append(("play", path))

    def play_state(self) -> tuple[float, bool]:
        return 0.0, False

    def stop_play(self) -> None:
        self.calls.append(("stop_play",))

    def hangup(self) -> None:
        self.calls.append(("hangup",))


FLOW = validate_flow(parse_flow({"start": "d", "steps": {
    "d": {"amd": {}, "branches": {"human": "offer", "machine": "drop"}},
    "offer": {"play": "offer.wav"}, "drop": {"voicemail_drop": True, "play": "msg.wav"}}}))
PROMPTS = {"offer": "/p/offer.wav", "drop": "/p/msg.wav"}


def test_runner_feeds_the_detector_then_the_waiter_without_a_gap() -> None:
    """One batch holding the decision and the beep: MACHINE, then the message right after the beep ends."""
    item = VOICEMAIL[0]
    tap = _Tap(item.pcm())
    media = _Media(tap)
    script = FlowScript(FLOW, PROMPTS)
    script.on_answer(media, 100.0)  # type: ignore[arg-type]
    tap.take(len(tap.frames))  # every frame of the file arrives in one loop turn
    script.on_tick(120.0)
    report = script.report()
    amd = report["amd"]
    assert isinstance(amd, dict) and amd["decision"] == "machine" and amd["decided_at_s"] < 5.0
    assert media.calls == [("play", "/p/msg.wav")]


def test_no_audio_to_listen_to_takes_the_human_path() -> None:
    """A call whose tap cannot be had: notsure/no_audio, so the human branch plays; the report says why."""
    media = _Media(None)
    script = FlowScript(FLOW, PROMPTS)
    script.on_answer(media, 100.0)  # type: ignore[arg-type]
    assert media.calls == [("play", "/p/offer.wav")]
    report = script.report()
    assert report["amd"] == {"decision": "notsure", "reason": "no_audio", "decided_at_s": 0.0, "detail": None}
    assert "errors" in report


def test_an_announcement_before_the_answer_decides_at_once() -> None:
    """The 183 was a carrier announcement and then the carrier answered: machine/announcement, no listening."""
    media = _Media(_Tap(b""))
    media.early_media = {"early_media": "announcement"}  # type: ignore[assignment]
    script = FlowScript(FLOW, PROMPTS)
    script.on_answer(media, 100.0)  # type: ignore[arg-type]
    report = script.report()
    assert report["amd"] == {"decision": "machine", "reason": "announcement", "decided_at_s": 0.0, "detail": None}
