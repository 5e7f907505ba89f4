"""CallMedia: the :class:`~worker.sip.answer.MediaControl` of one answered call.

It owns the call's prompt player, recorder, transfer and bridge leg, and
turns the facts the call's pjsua callbacks recorded into notices for the
script. The runtime calls :meth:`CallMedia.poll` every loop turn and delivers
the returned notices to the script, one by one, each guarded on its own.

Destroying pjsua media is deferred: a stopped player or recorder is kept in
``_retired`` until ``_RETIRE_S`` later (a player's queued end-of-file event,
a recorder's closing clock tick) and dropped on the SIP thread in ``poll``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pjsua2 as pj

from worker.sip.answer import MediaError, RecordMode, TransferMode
from worker.sip.media.events import DtmfEvent, MediaChanged, TransferStatus
from worker.sip.media.player import Player

_RETIRE_S = 0.2  # > 2 bridge clock ticks (20 ms) and pjmedia's event-thread latency


@dataclass(frozen=True)
class Notice:
    """Something to tell the script: ``kind`` is the callback's name without ``on_``."""

    kind: str
    args: tuple[object, ...]


class CallMedia:
    """MediaControl for one call. Every method runs on the SIP thread."""

    def __init__(self, call: Any, answered_at: float, hang_up: Callable[[], None]) -> None:
        self._call: Any | None = call  # dropped at the end: a script may outlive the call
        self._answered_at = answered_at
        self._hang_up = hang_up
        self._player: Player | None = None
        self._last_play: tuple[float, bool] = (0.0, False)
        self._retired: list[tuple[float, Any]] = []
        self._tx_baseline: int | None = None
        self._first_audio_s: float | None = None
        self._notices: list[Notice] = []
        self._audio: Any | None = None  # the call's AudioMedia our ports transmit to
        self._audio_port: int | None = None
        self._ended = False
        self.now = answered_at

    # --------------------------------------------------------------- MediaControl
    def play(self, wav_path: str) -> None:
        audio = None if self._call is None else self._call.audio
        if audio is None or self._ended:
            raise MediaError("the call has no active audio stream to play into")
        self.stop_play()
        self._player = Player(wav_path, [audio], self.now)
        self._audio, self._audio_port = audio, audio.getPortId()
        self._last_play = (0.0, False)
        if self._first_audio_s is None and self._tx_baseline is None:
            self._tx_baseline = self._tx_packets()

    def stop_play(self) -> None:
        if self._player is not None:
            self._last_play = (self._player.played_s(self.now), True)
            self._retire(self._player.stop(self.now))
            self._player = None

    def play_state(self) -> tuple[float, bool]:
        if self._player is None:
            return self._last_play
        return self._player.played_s(self.now), self._player.finished(self.now)

    def transfer(self, target_uri: str, mode: TransferMode) -> None:
        raise MediaError(f"transfer mode {mode!r} is not available in this worker yet")

    def start_recording(self, path: str, mode: RecordMode, max_s: float) -> None:
        self._notices.append(Notice("recording", (None, "recording_failed: not available in this worker yet")))

    def stop_recording(self) -> None:
        return

    def hangup(self) -> None:
        if not self._ended:
            self._hang_up()

    @property
    def first_audio_sent_s(self) -> float | None:
        return self._first_audio_s

    # ------------------------------------------------------------------- runtime
    def poll(self, now: float) -> list[Notice]:
        """One loop turn: take the call's recorded facts, advance media; returns notices for the script."""
        self.now = now
        events = []
        if self._call is not None:
            events, self._call.events = self._call.events, []
        for event in events:
            if isinstance(event, DtmfEvent):
                if event.start:
                    self._notices.append(Notice("dtmf", (event.digit,)))
            elif isinstance(event, TransferStatus):
                self._notices.append(Notice("transfer", (event.code, event.final)))
            elif isinstance(event, MediaChanged):
                self._media_changed()
        if self._player is not None and self._player.finished(now):
            self._last_play = (self._player.played_s(now), True)
            self._retire(self._player.stop(now))
            self._player = None
        self._measure_first_audio(now)
        self._drop_retired(now)
        notices, self._notices = self._notices, []
        return notices

    def end(self, now: float) -> None:
        """The call is over: stop every media object (they are dropped once retired)."""
        self.now = now
        if self._player is not None:
            played = self._player.played_s(now)
            self._last_play = (played, self._player.finished(now))
            self._retire(self._player.stop(now))
            self._player = None
        self._ended = True
        self._drop_call()

    def idle(self, now: float) -> bool:
        """True once nothing is left to destroy or report: the call may be released."""
        self._drop_retired(now)
        return self._ended and not self._retired and not self._notices

    def close(self) -> None:
        """Drop everything at once (agent stopping): the SIP thread is about to destroy the library."""
        self._ended = True
        self._player = None
        self._retired.clear()
        self._drop_call()

    def _drop_call(self) -> None:
        """Forget the pjsua call: it must be freed by the runtime, on the SIP thread, before libDestroy."""
        self._call = None
        self._hang_up = _nothing

    # ----------------------------------------------------------------- internals
    def _media_changed(self) -> None:
        """A re-INVITE (pjsua's own, to settle on one codec; a hold) may replace the call's bridge port."""
        audio = None if self._call is None else self._call.audio
        port = None if audio is None else audio.getPortId()
        if port == self._audio_port:
            return
        if self._player is not None:
            self._player.rebind(self._audio, audio)
        self._audio, self._audio_port = audio, port

    def _retire(self, obj: Any) -> None:
        self._retired.append((self.now + _RETIRE_S, obj))

    def _drop_retired(self, now: float) -> None:
        if self._retired:
            self._retired = [(due, obj) for due, obj in self._retired if due > now]

    def _tx_packets(self) -> int:
        if self._call is None:
            return 0
        with contextlib.suppress(pj.Error):
            info = self._call.getInfo()  # keep it alive: its media vector points into it
            for index, media in enumerate(info.media):
                if media.type == pj.PJMEDIA_TYPE_AUDIO:
                    return int(self._call.getStreamStat(index).rtcp.txStat.pkt)
        return 0

    def _measure_first_audio(self, now: float) -> None:
        if self._tx_baseline is None or self._first_audio_s is not None or self._ended:
            return
        if self._tx_packets() > self._tx_baseline:
            self._first_audio_s = max(0.0, now - self._answered_at)
            self._tx_baseline = None


def _nothing() -> None:
    return
