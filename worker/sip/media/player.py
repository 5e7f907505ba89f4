"""One prompt playing into a call: an AudioMediaPlayer that is never subclassed.

pjsua2's ``AudioMediaPlayer.onEof2`` arrives on pjmedia's event thread and
crashes Python, so the player is used as is and its progress is polled from
the SIP loop (``getPos``). Stopping disconnects it from every sink
(``stopTransmit``) before it is destroyed: pjproject 2.15.1 has a
use-after-free when a player is deleted with its end-of-file event still
queued, so the caller keeps a stopped player a little while (see
:class:`~worker.sip.media.control.CallMedia`) before dropping the last
reference, on the SIP thread.
"""

from __future__ import annotations

import contextlib
import wave
from typing import Any

import pjsua2 as pj

from worker.sip.answer import MediaError

_END_SLACK_S = 0.05  # a bridge clock tick and a half: how far short of the end still counts as played


def wav_duration_s(path: str) -> tuple[float, int]:
    """(duration in seconds, sample rate) of a WAV file pjmedia can play (16-bit PCM mono)."""
    try:
        with wave.open(path, "rb") as wav:
            if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
                raise MediaError(f"{path}: not 16-bit PCM mono")
            rate = wav.getframerate()
            return wav.getnframes() / rate, rate
    except (OSError, EOFError, wave.Error) as exc:
        raise MediaError(f"{path}: cannot read the WAV file ({exc})") from exc


class Player:
    """A started prompt. Every method runs on the SIP thread."""

    def __init__(self, wav_path: str, sinks: list[Any], now: float) -> None:
        self.path = wav_path
        self.duration_s, self._rate = wav_duration_s(wav_path)
        self.started_at = now
        self._sinks: list[Any] = []
        self._stopped_at: float | None = None
        self._last_pos_s = 0.0
        self._player = pj.AudioMediaPlayer()
        try:
            self._player.createPlayer(wav_path, pj.PJMEDIA_FILE_NO_LOOP)
        except pj.Error as exc:
            raise MediaError(f"{wav_path}: pjmedia cannot play it ({exc.reason})") from exc
        for sink in sinks:
            self.connect(sink)

    @property
    def media(self) -> Any:
        return self._player

    def connect(self, sink: Any) -> None:
        """Send the prompt to one more port (the call, a recorder)."""
        if self._stopped_at is None:
            self._player.startTransmit(sink)
            self._sinks.append(sink)

    def disconnect(self, sink: Any) -> None:
        if sink in self._sinks:
            self._sinks.remove(sink)
            with contextlib.suppress(pj.Error):
                self._player.stopTransmit(sink)

    def rebind(self, old: Any, new: Any | None) -> None:
        """The call's stream was recreated (a re-INVITE): ``old`` is gone from the bridge, send to ``new``."""
        if old in self._sinks:
            self._sinks.remove(old)  # its port no longer exists: nothing to stop
        if new is not None:
            self.connect(new)

    def played_s(self, now: float) -> float:
        """Seconds played: the file position, bounded by the wall clock since start and by the length."""
        if self._stopped_at is not None:
            return self._last_pos_s
        try:
            pos = self._player.getPos() / self._rate
        except pj.Error:
            pos = self._last_pos_s
        elapsed = now - self.started_at
        if elapsed >= self.duration_s + _END_SLACK_S:
            pos = self.duration_s  # getPos can stop short of a last partial read buffer; time has told
        # getPos counts what pjmedia has read ahead; the callee cannot have heard more than time allows.
        self._last_pos_s = max(self._last_pos_s, min(pos, elapsed, self.duration_s))
        return self._last_pos_s

    def finished(self, now: float) -> bool:
        """True once the whole file has been sent (or the prompt was stopped)."""
        if self._stopped_at is not None:
            return True
        return now - self.started_at >= self.duration_s and self.played_s(now) >= self.duration_s - _END_SLACK_S

    def stop(self, now: float) -> Any:
        """Disconnect from every sink; returns the pjsua object for the caller to drop later."""
        if self._stopped_at is None:
            self.played_s(now)
            self._stopped_at = now
            for sink in list(self._sinks):
                self.disconnect(sink)
        return self._player
