"""The callee's audio for the listening flow steps: tap frames in, ``Heard`` events out (SIP thread).

The flow runner (:mod:`worker.flow_runner`) owns one :class:`CallListener`
per call. When the engine says ``Listen(step, "amd")`` it takes the call's
audio tap (``MediaControl.audio_tap()``, attached then, shared with the AI
bridge) and feeds every 20 ms frame to an :class:`~shared.amd.AmdDetector`;
``Listen(step, "beep")`` feeds a :class:`~shared.amd_drop.VoicemailWaiter`.
Frames are taken one at a time, so the frame that settles the detector ends
its feeding and the very next one goes to whatever the engine starts next
(the machine branch's ``voicemail_drop`` hears the rest of the greeting and
the beep without a gap).

Cost: the detector does one FFT per frame, about 60 us (bench/bench_amd.py),
so a loop turn (10 ms) sees at most a frame or two per call: cheap enough to
run on the SIP thread, where every other media decision is made.

Times: a decision's ``at_s`` is the step's start (seconds since answer) plus
the audio the detector consumed, i.e. the time since answer of the audio that
settled it, which is what the bench's decision times measure; the tap's own
delay (at most one 20 ms bridge tick) comes on top.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from shared.amd import AmdDetector, AmdSettings
from shared.amd_drop import DropSettings, VoicemailWaiter
from shared.flow.listen import Heard
from worker.sip.answer import AudioFrames, MediaControl


class CallListener:
    """One call's listening state. Every method runs on the SIP thread."""

    def __init__(self, ctl: MediaControl) -> None:
        self._ctl = ctl
        self._tap: AudioFrames | None = None
        self._pending: deque[bytes] = deque()
        self._amd: AmdDetector | None = None
        self._drop: VoicemailWaiter | None = None
        self._amd_settings = AmdSettings()
        self._started_at_s = 0.0
        self.decision: dict[str, Any] | None = None  # the last amd result (to_json), for the report

    def start_amd(self, params: Mapping[str, Any], at_s: float) -> None:
        """Listen for a decision from now (``at_s`` since answer). Raises MediaError without a tap."""
        self._open(fresh=True)
        self._amd_settings = AmdSettings(**params)
        self._amd, self._drop, self._started_at_s = AmdDetector(self._amd_settings), None, at_s

    def start_beep(self, params: Mapping[str, Any], at_s: float) -> None:
        """Listen for the end of the greeting or its beep; frames left by the amd step carry on."""
        self._open(fresh=False)
        self._drop = VoicemailWaiter(DropSettings.parse(dict(params)), self._amd_settings)
        self._amd, self._started_at_s = None, at_s

    def stop(self) -> None:
        self._amd = self._drop = None

    def poll(self, now: float) -> Heard | None:
        """Feed what arrived; the first event it settles (later frames wait for the next poll), else None."""
        if self._tap is None:
            return None
        self._pending.extend(self._tap.read())
        while self._pending:
            frame = self._pending.popleft()
            if self._amd is not None:
                result = self._amd.feed(frame)
                if result is not None:
                    self._amd = None
                    self.decision = result.to_json()
                    return Heard(result.decision.value, result.reason.value, now,
                                 self._started_at_s + result.decided_at_s)
            elif self._drop is not None:
                heard = self._drop.feed(frame)
                if heard is not None:
                    self._drop = None
                    return Heard(heard[0], heard[0], now, self._started_at_s + heard[1])
        return None

    def discard(self) -> None:
        """Not listening: drop what arrived, so the next step starts on fresh audio."""
        if self._tap is not None:
            self._tap.read()
        self._pending.clear()

    def hung_up(self) -> dict[str, Any] | None:
        """The call ended while the detector listened: its NOTSURE/ended result, for the report."""
        if self._amd is not None:
            self.decision = self._amd.finish().to_json()
            self._amd = None
        return self.decision

    def _open(self, *, fresh: bool) -> None:
        if self._tap is None:
            self._tap = self._ctl.audio_tap()
            self._tap.read()  # the tap is the call's: frames from before this step are not ours
            self._pending.clear()
        elif fresh:
            self.discard()
