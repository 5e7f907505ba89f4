"""Recording a call to a WAV file, and knowing when that file is whole.

An AudioMediaRecorder writes as the conference bridge clocks it; its WAV
header gets its final sizes only when it is destroyed, and pjproject 2.15
closes the file one bridge clock tick after the delete. So a recording is
stopped (every source disconnected), its recorder dropped on the SIP thread
after a short retirement, and only then is the file read back: it is reported
when the RIFF header matches the file's size.
"""

from __future__ import annotations

import contextlib
import os
import wave
from typing import Any

import pjsua2 as pj

from worker.sip.answer import MediaError, RecordMode

_HEADER = 44


def wav_is_whole(path: str) -> bool:
    """True when the RIFF and data chunk sizes in the header match what is on disk."""
    try:
        with open(path, "rb") as f:
            head = f.read(_HEADER)
        size = os.path.getsize(path)
    except OSError:
        return False
    if len(head) < _HEADER or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return False
    riff = int.from_bytes(head[4:8], "little")
    return riff == size - 8 and riff > _HEADER - 8 - 1


def short_recording(path: str, expected_s: float) -> str | None:
    """An error when a whole WAV holds much less than the time it recorded (the disk filled up), else None.

    pjmedia stops writing when a write fails and still closes the file with a
    correct header, so a full disk leaves a valid but truncated WAV.
    """
    try:
        with wave.open(path, "rb") as wav:
            got_s = wav.getnframes() / wav.getframerate()
    except (OSError, EOFError, wave.Error) as exc:
        return f"recording_failed: {path} cannot be read back ({exc})"
    if got_s < expected_s * 0.9 - 0.5:
        return f"recording_failed: {path} holds {got_s:.1f} s of the {expected_s:.1f} s recorded (disk full?)"
    return None


class Recording:
    """One recording in progress. Every method runs on the SIP thread."""

    def __init__(self, path: str, mode: RecordMode, max_s: float, now: float) -> None:
        self.path = path
        self.mode = mode
        self.started_at = now
        self.deadline = now + max(0.0, max_s)
        self._sources: list[Any] = []
        self._recorder = pj.AudioMediaRecorder()
        try:
            self._recorder.createRecorder(path)
        except pj.Error as exc:
            raise MediaError(f"recording_failed: cannot write {path} ({exc.reason.strip()})") from exc
        self.stopped = False

    def connect(self, source: Any) -> None:
        """Mix one more source into the file (the callee; in mode call, prompts and the agent too)."""
        if not self.stopped and source is not None and source not in self._sources:
            source.startTransmit(self._recorder)
            self._sources.append(source)

    def forget(self, source: Any) -> None:
        """A source whose bridge port is already gone (a replaced stream, a destroyed player)."""
        if source in self._sources:
            self._sources.remove(source)

    def disconnect(self, source: Any) -> None:
        if source in self._sources:
            self._sources.remove(source)
            with contextlib.suppress(pj.Error):
                source.stopTransmit(self._recorder)

    def stop(self) -> Any:
        """Disconnect every source; returns the recorder for the caller to drop (which closes the file)."""
        self.stopped = True
        for source in list(self._sources):
            self.disconnect(source)
        return self._recorder
