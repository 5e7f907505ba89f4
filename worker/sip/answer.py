"""The seam between the SIP thread and a call flow: what runs when someone answers.

A flow runner (``worker.flows``) implements :class:`AnswerScript`; the SIP
runtime (:mod:`worker.sip.runtime`) calls it on the SIP thread and hands it a
:class:`MediaControl` for the answered call. Both sides keep to the SIP
thread's rules: callbacks record facts and decide, they never block, and only
the SIP thread touches pjsua2 (every MediaControl method runs there, because
every script callback does).

Order of calls for one answered call::

    on_answer(ctl, now)          once, when the call is CONFIRMED
    on_tick(now)                 every loop turn while the call is up (~poll_ms)
    on_dtmf / on_transfer / on_recording   as the facts arrive
    on_hangup(by, now)           once, when the call ended (by "local" or "remote")
    on_recording(...)            may still follow on_hangup: a recording is
                                 reported only once its WAV file is whole
    report()                     when the call is released; becomes CallResult.flow

``done()`` is asked after every callback; True hangs the call up (if it is
still up) and the runtime releases it once every media object is gone. A
script that raises is caught: the call is hung up and ``CallResult.flow``
carries ``{"error": "..."}`` beside whatever ``report()`` still returns.

Changes from SEAM.md: none in shape. ``first_audio_sent_s`` is measured from
the answer (the 200 OK) to the first loop turn that sees the stream's RTP
packet count rise after a prompt started (pjsua sends no RTP for silence, VAD
being on), so it is accurate to one loop turn (poll_ms, 10 ms by default).
``play_state`` after the callee hung up tells how much had been played then;
it reports a prompt finished even where pjmedia's getPos stops short of the
end of a file (a last partial read buffer), once the wall clock has passed
its length.

The implementation is :class:`worker.sip.media.control.CallMedia`. Methods
that cannot do what is asked raise :class:`MediaError` (no audio stream, an
unreadable WAV, a transfer target pjsua refuses, a second bridge); a script
that lets it escape is hung up like any raising script. A recording that
cannot be written is not raised: it comes to ``on_recording(None,
"recording_failed: ...")`` and the call goes on; one cut short by a full disk
comes with both its (valid, truncated) path and a ``recording_failed`` error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Protocol

TransferMode = Literal["refer", "bridge"]
RecordMode = Literal["call", "message"]
HangupSide = Literal["local", "remote"]


class MediaControl(Protocol):
    """Given to the script for one answered call. Every method runs on the SIP thread."""

    def play(self, wav_path: str) -> None:
        """Start a prompt (replacing any current one); the callee hears it. Raises MediaError."""

    def stop_play(self) -> None:
        """Stop the current prompt (stopTransmit, then the player is destroyed)."""

    def play_state(self) -> tuple[float, bool]:
        """(seconds of the current or last prompt played so far, finished?), polled."""

    def transfer(self, target_uri: str, mode: TransferMode) -> None:
        """Blind transfer (REFER) or bridge to ``target_uri``; the result comes to on_transfer."""

    def start_recording(self, path: str, mode: RecordMode, max_s: float) -> None:
        """Record the call (both directions mixed) or the callee only; result to on_recording."""

    def stop_recording(self) -> None:
        """Finish the recording; on_recording follows once the WAV file is whole."""

    def hangup(self) -> None:
        """Send BYE now; on_hangup("local") follows."""

    @property
    def first_audio_sent_s(self) -> float | None:
        """Seconds from 200 OK to the first RTP packet of prompt audio sent, once known."""


class AnswerScript(Protocol):
    """What runs on answer. Callbacks record facts and decide; they never block."""

    def on_answer(self, ctl: MediaControl, now: float) -> None: ...

    def on_tick(self, now: float) -> None: ...

    def on_dtmf(self, digit: str, now: float) -> None: ...

    def on_transfer(self, status: int, final: bool, now: float) -> None: ...

    def on_recording(self, path: str | None, error: str | None, now: float) -> None: ...

    def on_hangup(self, by: HangupSide, now: float) -> None: ...

    def done(self) -> bool: ...

    def report(self) -> Mapping[str, object]: ...


class MediaError(Exception):
    """A media operation the script asked for cannot be done (unreadable WAV, no audio stream...)."""
