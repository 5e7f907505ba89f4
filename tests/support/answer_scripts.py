"""A small AnswerScript for media tests: does what the test tells it, records every callback.

Each test gives ``on_answer_do`` (what to do with the MediaControl at answer)
and ``until`` (when the script is done, asked after every callback); the
script keeps a timeline of everything it was told, so a test asserts on
facts, not on timing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from worker.sip.answer import HangupSide, MediaControl


@dataclass
class ScriptedTest:
    on_answer_do: Callable[[MediaControl], None] = lambda ctl: None
    until: Callable[[ScriptedTest], bool] = lambda s: False
    on_dtmf_do: Callable[[ScriptedTest, str], None] = lambda s, d: None
    on_transfer_do: Callable[[ScriptedTest, int, bool], None] = lambda s, c, f: None
    deadline_s: float = 20.0  # a bound of its own, so a broken peer cannot hold the test
    ctl: MediaControl | None = None
    answered_at: float | None = None
    digits: str = ""
    transfers: list[tuple[int, bool]] = field(default_factory=list)
    recordings: list[tuple[str | None, str | None]] = field(default_factory=list)
    hangup: HangupSide | None = None
    play_at_hangup: tuple[float, bool] | None = None
    timeline: list[tuple[float, str]] = field(default_factory=list)
    timed_out: bool = False
    now: float = 0.0

    def _at(self, now: float, what: str) -> None:
        self.now = now
        self.timeline.append((now - (self.answered_at or now), what))

    def on_answer(self, ctl: MediaControl, now: float) -> None:
        self.ctl, self.answered_at = ctl, now
        self._at(now, "answer")
        self.on_answer_do(ctl)

    def on_tick(self, now: float) -> None:
        self.now = now
        if self.answered_at is not None and now - self.answered_at > self.deadline_s:
            self.timed_out = True

    def on_dtmf(self, digit: str, now: float) -> None:
        self._at(now, f"dtmf {digit}")
        self.digits += digit
        self.on_dtmf_do(self, digit)

    def on_transfer(self, status: int, final: bool, now: float) -> None:
        self._at(now, f"transfer {status} {final}")
        self.transfers.append((status, final))
        self.on_transfer_do(self, status, final)

    def on_recording(self, path: str | None, error: str | None, now: float) -> None:
        self._at(now, f"recording {path} {error}")
        self.recordings.append((path, error))

    def on_hangup(self, by: HangupSide, now: float) -> None:
        self._at(now, f"hangup {by}")
        self.hangup = by
        if self.ctl is not None:
            self.play_at_hangup = self.ctl.play_state()

    def done(self) -> bool:
        return self.timed_out or self.until(self)

    def report(self) -> Mapping[str, object]:
        first = self.ctl.first_audio_sent_s if self.ctl is not None else None
        return {"digits": self.digits, "first_audio_sent_s": first, "timed_out": self.timed_out}
