"""CallMedia: the :class:`~worker.sip.answer.MediaControl` of one answered call.

It owns the call's prompt player, recording and transfer (REFER or a bridged
leg), and turns the facts the call's pjsua callbacks recorded into notices
for the script. The runtime calls :meth:`CallMedia.poll` every loop turn and
delivers the returned notices to the script, each guarded on its own.

Every port it connects follows the call's current AudioMedia: a re-INVITE
(a hold, a codec change) replaces the call's bridge port, and the prompt, the
recorder and a bridged agent are reconnected to the new one.

Destroying pjsua media is deferred: a stopped player or recorder is kept in
``_retired`` for ``_RETIRE_S`` (a player's queued end-of-file event, a
recorder's closing clock tick) and dropped on the SIP thread in ``poll``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pjsua2 as pj

from worker.sip.answer import MediaError, RecordMode, TransferMode
from worker.sip.audio_tap import AudioTap
from worker.sip.media.bridge import BridgeLeg, refer
from worker.sip.media.events import DtmfEvent, MediaChanged, TransferStatus
from worker.sip.media.player import Player
from worker.sip.media.recorder import Recording, short_recording, wav_is_whole

_RETIRE_S = 0.2  # > 2 bridge clock ticks (20 ms) and pjmedia's event-thread latency
_CLOCK_TICK_S = 0.05  # a bridge clock tick (20 ms) with margin
_WHOLE_WAIT_S = 2.0  # after that, a recording whose header never matched is reported failed
BRIDGE_RING_TIMEOUT_S = 30.0

PlaceLeg = Callable[[str], Any]  # places the bridged call; raises MediaError


@dataclass(frozen=True)
class _Closing:
    check_from: float
    give_up_at: float
    path: str
    expected_s: float  # how long the recording ran


@dataclass(frozen=True)
class Notice:
    """Something to tell the script: ``kind`` is the callback's name without ``on_``."""

    kind: str
    args: tuple[object, ...]


class CallMedia:
    """MediaControl for one call. Every method runs on the SIP thread."""

    def __init__(self, call: Any, answered_at: float, hang_up: Callable[[], None], place_leg: PlaceLeg) -> None:
        self._call: Any | None = call  # dropped at the end: a script may outlive the call
        self._answered_at = answered_at
        self._hang_up = hang_up
        self._place_leg = place_leg
        self._player: Player | None = None
        self._last_play: tuple[float, bool] = (0.0, False)
        self._recording: Recording | None = None
        self._closing: list[_Closing] = []  # stopped recordings whose file is not yet reported
        self._leg: BridgeLeg | None = None
        self._retired: list[tuple[float, Any]] = []
        self._tx_baseline: int | None = None
        self._first_audio_s: float | None = None
        self._notices: list[Notice] = []
        self._audio: Any | None = None  # the call's AudioMedia our ports are connected to
        self._audio_port: int | None = None
        self._tap: AudioTap | None = None  # an AI agent's stream (worker/agent/stream_step.py)
        self._ended = False
        self.now = answered_at
        self._media_changed()

    # --------------------------------------------------------------- MediaControl
    def play(self, wav_path: str) -> None:
        self._media_changed()
        if self._audio is None or self._ended:
            raise MediaError("the call has no active audio stream to play into")
        self.stop_play()
        self._player = Player(wav_path, [self._audio], self.now)
        if self._recording is not None and self._recording.mode == "call":
            self._recording.connect(self._player.media)
        self._last_play = (0.0, False)
        if self._first_audio_s is None and self._tx_baseline is None:
            self._tx_baseline = self._tx_packets()

    def stop_play(self) -> None:
        if self._player is not None:
            self._last_play = (self._player.played_s(self.now), True)
            self._retire_player()

    def play_state(self) -> tuple[float, bool]:
        if self._player is None:
            return self._last_play
        return self._player.played_s(self.now), self._player.finished(self.now)

    def transfer(self, target_uri: str, mode: TransferMode) -> None:
        if self._call is None or self._ended:
            raise MediaError("the call has ended")
        if self._leg is not None:
            raise MediaError("a bridged transfer is already in progress")
        if mode == "refer":
            refer(self._call, target_uri)
        elif mode == "bridge":
            self._leg = BridgeLeg(self._place_leg(target_uri), target_uri, self.now, BRIDGE_RING_TIMEOUT_S)
        else:
            raise MediaError(f"unknown transfer mode {mode!r}")

    def start_recording(self, path: str, mode: RecordMode, max_s: float) -> None:
        if self._recording is not None:
            self.stop_recording()
        try:
            recording = Recording(path, mode, max_s, self.now)
        except MediaError as exc:
            self._notices.append(Notice("recording", (None, str(exc))))
            return
        self._recording = recording
        recording.connect(self._audio)
        if mode == "call":
            if self._player is not None:
                recording.connect(self._player.media)
            if self._leg is not None:
                recording.connect(self._leg.agent_audio)

    def stop_recording(self) -> None:
        if self._recording is not None:
            self._retire(self._recording.stop())
            check_from = self.now + _RETIRE_S + _CLOCK_TICK_S  # the file closes a tick after the drop
            expected_s = self.now - self._recording.started_at
            self._closing.append(_Closing(check_from, check_from + _WHOLE_WAIT_S, self._recording.path, expected_s))
            self._recording = None

    def hangup(self) -> None:
        if not self._ended:
            self._hang_up()

    @property
    def first_audio_sent_s(self) -> float | None:
        return self._first_audio_s

    def attach_tap(self, tap: AudioTap) -> None:
        """Connect an agent's audio tap both ways (it follows re-INVITEs); MediaError when there is no audio."""
        self._media_changed()
        if self._audio is None or self._ended:
            raise MediaError("the call has no active audio stream to bridge")
        if self._tap is not None:
            raise MediaError("an agent stream is already attached")
        try:
            tap.attach(self._audio, send=True)
        except pj.Error as exc:
            raise MediaError(f"audio tap refused: {exc.reason}") from None
        self._tap = tap
        if self._first_audio_s is None and self._tx_baseline is None:
            self._tx_baseline = self._tx_packets()  # the agent's first words count as the first audio

    def detach_tap(self) -> None:
        """stopTransmit both ways and free the port (explicitly, here on the SIP thread)."""
        tap, self._tap = self._tap, None
        if tap is not None:
            tap.detach()

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
            self._retire_player()
        if self._recording is not None and now >= self._recording.deadline:
            self.stop_recording()
        self._poll_leg(now)
        self._measure_first_audio(now)
        self._drop_retired(now)
        self._report_closed_recordings(now)
        notices, self._notices = self._notices, []
        return notices

    def end(self, now: float) -> None:
        """The call is over: stop every media object (they are dropped once retired), end a bridged leg."""
        self.now = now
        if self._player is not None:
            self._last_play = (self._player.played_s(now), self._player.finished(now))
            self._retire_player()
        self.stop_recording()
        if self._leg is not None:
            self._leg.hang_up()
        self.detach_tap()
        self._ended = True
        self._call = None
        self._audio = None  # a script may keep this object: it must hold no pjsua wrapper
        self._hang_up = _nothing

    def release_ended_leg(self) -> None:
        """Drop a bridged leg's PjCall as soon as it is DISCONNECTED (before its slot is reused)."""
        if self._leg is not None and self._leg.ended:
            self._leg.release_if_ended()

    @property
    def has_leg(self) -> bool:
        """A bridged leg holds a pjsua call slot."""
        return self._leg is not None and not self._leg.release_if_ended()

    def idle(self, now: float) -> bool:
        """True once nothing is left to destroy or report: the call may be released."""
        self._drop_retired(now)
        return (self._ended and not self._retired and not self._notices and not self._closing
                and not self.has_leg)

    def close(self) -> None:
        """Drop everything at once (agent stopping): the SIP thread is about to destroy the library."""
        self._ended = True
        self.detach_tap()  # ports are destroyed before libDestroy
        self._player = None
        self._recording = None
        self._leg = None
        self._retired.clear()
        self._call = None
        self._audio = None
        self._hang_up = _nothing

    # ----------------------------------------------------------------- internals
    def _media_changed(self) -> None:
        """A re-INVITE (a hold, a codec change) may replace the call's bridge port: follow it."""
        audio = None if self._call is None else self._call.audio
        port = None if audio is None else int(audio.getPortId())
        if port == self._audio_port:
            return
        old = self._audio
        self._audio, self._audio_port = audio, port
        if self._player is not None:
            self._player.rebind(old, audio)
        if self._recording is not None:
            self._recording.forget(old)
            self._recording.connect(audio)
        if self._tap is not None and audio is not None:
            self._tap.rebind(audio)

    def _poll_leg(self, now: float) -> None:
        leg = self._leg
        if leg is None:
            return
        was_joined = leg.joined
        for status, final in leg.poll(self._audio if not self._ended else None, now):
            self._notices.append(Notice("transfer", (status, final)))
        if leg.joined and not was_joined:
            self.stop_play()  # the agent must not hear the prompt
            if self._recording is not None and self._recording.mode == "call":
                self._recording.connect(leg.agent_audio)
        if leg.ended and was_joined and not self._ended:
            self._hang_up()  # the agent hung up: the customer's call ends too

    def _retire_player(self) -> None:
        player = self._player
        if player is None:
            return
        self._player = None
        if self._recording is not None:
            self._recording.disconnect(player.media)
        self._retire(player.stop(self.now))

    def _retire(self, obj: Any) -> None:
        self._retired.append((self.now + _RETIRE_S, obj))

    def _drop_retired(self, now: float) -> None:
        if self._retired:
            self._retired = [(due, obj) for due, obj in self._retired if due > now]

    def _report_closed_recordings(self, now: float) -> None:
        if not self._closing:
            return
        still: list[_Closing] = []
        for closing in self._closing:
            path = closing.path
            if now < closing.check_from:
                still.append(closing)
            elif wav_is_whole(path):
                self._notices.append(Notice("recording", (path, short_recording(path, closing.expected_s))))
            elif now >= closing.give_up_at:
                self._notices.append(Notice("recording", (None, f"recording_failed: {path} never became a whole WAV")))
            else:
                still.append(closing)
        self._closing = still

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
