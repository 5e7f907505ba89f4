"""The audio tap: a call's received audio into Python frames, and Python frames out to the call.

Shared by answering-machine detection (read only) and the AI-agent bridge
(both ways). One :class:`AudioTap` per call, in two halves:

* the **SIP-thread half**, :meth:`AudioTap.attach` / :meth:`AudioTap.rebind` /
  :meth:`AudioTap.detach`:
  creates a pjsua2 ``AudioMediaPort`` (8 kHz mono PCM16, 20 ms frames),
  connects the call's ``AudioMedia`` to it (and it to the call when
  ``send=True``), follows the call to a new ``AudioMedia`` after a re-INVITE,
  and tears it down. Only the SIP thread may call these:
  ``detach`` stops transmission both ways, then destroys the port
  explicitly with ``pj.AudioMediaPort.__swig_destroy__`` while still holding
  the reference, then drops it. Letting the last reference go instead
  segfaulted under load (the clock thread entered a director callback on an
  object being freed: 3 runs of 3, measured for the AI-bridge issue), while
  explicit destruction held for 1,548 ports;
* the **any-thread half**, :meth:`read` / :meth:`read_pcm` / :meth:`write` /
  :meth:`clear`: bounded deques, nothing else. Other threads never see the port.

The frame callbacks run on pjmedia's clock thread and take the GIL, so they
only push or pop one deque entry and bump a counter; no logging, no
allocation beyond the frame's bytes, and no exception escapes. Full deques
drop and count (``rx_dropped``: the oldest frame goes; ``tx_dropped``:
:meth:`write` refuses the newest); nothing ever grows.

Reading ``frame.buf`` the obvious way, ``bytes(frame.buf)``, walks the SWIG
vector element by element: 130 µs per 320-byte frame on a quiet machine,
460-760 µs on this loaded one. :func:`vector_bytes` reads the ``std::vector``'s
begin/end pointers with ctypes and copies the bytes in one ``string_at``:
3 µs in the same run (``bench/bench_audio_tap.py``). The layout is checked
once at import against the slow path, which stays the fallback. Outgoing
frames become ``ByteVector`` objects on the *writer's* thread
(:func:`to_byte_vector`, 5 µs against 10 µs for ``pj.ByteVector(data)``), so
the send callback only assigns one (a C++ vector copy, 2 µs).

Added delay: a received frame reaches the deque in the conference-bridge
tick that takes it from the call's jitter buffer, so the tap adds at most
one 20 ms tick, plus the reader's poll interval (the SIP loop turns every
``poll_ms``, 10 ms by default). Sending adds the frames queued ahead plus
one tick. Measured on loopback: a burst written to the tap, sent as PCMU,
echoed by sipp and read back from the same tap returns in 55 ms p50, 57 ms
p90, of which pjmedia's jitter buffer and the two ticks are most.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
import time
from collections import deque
from typing import Any

import numpy as np
import numpy.typing as npt
import pjsua2 as pj

RATE = 8000
PTIME_MS = 20
FRAME_BYTES = RATE * PTIME_MS // 1000 * 2  # 320: 160 samples of PCM16
_AUDIO = pj.PJMEDIA_FRAME_TYPE_AUDIO
_SILENCE = bytes(FRAME_BYTES)


def _vector_bytes_fast(buf: Any) -> bytes:
    begin, end = (ctypes.c_void_p * 2).from_address(int(buf.this))
    if not begin or not end or end <= begin:
        return b""
    return ctypes.string_at(begin, end - begin)


def _vector_bytes_slow(buf: Any) -> bytes:
    return bytes(buf)


def _layout_ok() -> bool:
    """Does this build's std::vector start with (begin, end) pointers? Checked against the slow path."""
    try:
        probe = pj.ByteVector(bytes(range(7, 250)))
        return _vector_bytes_fast(probe) == bytes(probe) and _vector_bytes_fast(pj.ByteVector()) == b""
    except Exception:
        return False


vector_bytes = _vector_bytes_fast if _layout_ok() else _vector_bytes_slow


def to_byte_vector(pcm: bytes) -> Any:
    """A ``pj.ByteVector`` holding ``pcm`` (the only type ``frame.buf`` accepts), built without a Python loop."""
    vec = pj.ByteVector(len(pcm))
    if vector_bytes is _vector_bytes_fast and pcm:
        begin = ctypes.c_void_p.from_address(int(vec.this)).value
        if begin:
            ctypes.memmove(begin, pcm, len(pcm))
            return vec
    return pj.ByteVector(pcm)


class _Counters:
    """Written only by the clock thread's callbacks, read by anyone; outlives the port."""

    __slots__ = ("errors", "rx_dropped", "rx_frames", "tx_frames", "tx_underruns")

    def __init__(self) -> None:
        self.rx_frames = 0
        self.rx_dropped = 0
        self.tx_frames = 0
        self.tx_underruns = 0
        self.errors = 0


class _TapPort(pj.AudioMediaPort):  # type: ignore[misc]  # pjsua2 ships no type information
    """The port whose callbacks run on pjmedia's clock thread. Holds only deques and counters."""

    def __init__(self, rx: deque[tuple[float, bytes]], tx: deque[Any], silence: Any, counters: _Counters) -> None:
        super().__init__()
        self.rx = rx
        self.tx = tx
        self.silence = silence
        self.counters = counters

    def onFrameReceived(self, frame: Any) -> None:
        try:
            data = vector_bytes(frame.buf) if frame.type == _AUDIO and frame.size else _SILENCE
            rx = self.rx
            if len(rx) == rx.maxlen:
                self.counters.rx_dropped += 1  # the deque drops its oldest frame to take this one
            rx.append((time.monotonic(), data))
            self.counters.rx_frames += 1
        except BaseException:  # an exception escaping a director callback aborts the process
            self.counters.errors += 1

    def onFrameRequested(self, frame: Any) -> None:
        try:
            try:
                vec = self.tx.popleft()
                self.counters.tx_frames += 1
            except IndexError:
                vec = self.silence
                self.counters.tx_underruns += 1
            frame.buf = vec
            frame.size = FRAME_BYTES
            frame.type = _AUDIO
        except BaseException:
            self.counters.errors += 1


class AudioTap:
    """One call's tap. ``attach``/``detach`` on the SIP thread; everything else on any thread."""

    def __init__(self, *, max_rx_frames: int = 250, max_tx_frames: int = 50, name: str = "tap") -> None:
        if max_rx_frames < 1 or max_tx_frames < 1:
            raise ValueError("max_rx_frames and max_tx_frames must be >= 1")
        self.name = name
        self._rx: deque[tuple[float, bytes]] = deque(maxlen=max_rx_frames)
        self._tx: deque[Any] = deque()
        self._max_tx = max_tx_frames
        self._write_lock = threading.Lock()
        self._pending = b""  # a partial frame from the last write
        self.tx_dropped = 0
        self._port: _TapPort | None = None
        self._media: Any = None
        self._sending = False
        self._counters = _Counters()

    # ------------------------------------------------------------ SIP thread
    def attach(self, call_media: Any, *, send: bool = False) -> None:
        """Connect to a call's ``AudioMedia`` (from ``call.getAudioMedia(-1)``). SIP thread only.

        If pjsua refuses half-way, the port is freed the safe way and the pj.Error propagates.
        """
        if self._port is not None:
            raise RuntimeError(f"audio tap {self.name} is already attached")
        fmt = pj.MediaFormatAudio()
        fmt.init(pj.PJMEDIA_FORMAT_PCM, RATE, 1, PTIME_MS * 1000, 16)
        port = _TapPort(self._rx, self._tx, to_byte_vector(_SILENCE), self._counters)
        self._port, self._media, self._sending = port, call_media, send
        try:
            port.createPort(self.name, fmt)
            self._connect(port, call_media)
        except BaseException:
            self.detach()
            raise

    def rebind(self, call_media: Any) -> None:
        """Follow the call to a new ``AudioMedia`` (a re-INVITE replaced its bridge port). SIP thread only."""
        port, old = self._port, self._media
        if port is None:
            raise RuntimeError(f"audio tap {self.name} is not attached")
        self._disconnect(port, old)
        self._media = call_media
        self._connect(port, call_media)

    def _connect(self, port: _TapPort, media: Any) -> None:
        media.startTransmit(port)
        if self._sending:
            port.startTransmit(media)

    def _disconnect(self, port: _TapPort, media: Any) -> None:
        """stopTransmit both ways; errors mean the call's media is already gone, so nothing flows anyway."""
        with contextlib.suppress(pj.Error):
            media.stopTransmit(port)
        if self._sending:
            with contextlib.suppress(pj.Error):
                port.stopTransmit(media)

    def detach(self) -> None:
        """Disconnect and free the port: stopTransmit both ways, destroy explicitly, then drop. SIP thread only.

        Safe to call twice, and after the call's media has gone (its errors are ignored).
        """
        port, media = self._port, self._media
        if port is None:
            return
        self._disconnect(port, media)
        pj.AudioMediaPort.__swig_destroy__(port)  # while we still hold the reference
        self._port = None
        self._media = None
        del port  # the last reference goes only now, after the C++ object is gone

    @property
    def attached(self) -> bool:
        return self._port is not None

    # ------------------------------------------------------------- any thread
    def read(self) -> list[bytes]:
        """The frames received since the last read (320 bytes each), oldest first."""
        return [data for _, data in self.read_timed()]

    def read_timed(self) -> list[tuple[float, bytes]]:
        """Like :meth:`read`, with the ``time.monotonic()`` at which each frame arrived."""
        out: list[tuple[float, bytes]] = []
        rx = self._rx
        while True:
            try:
                out.append(rx.popleft())
            except IndexError:
                return out

    def read_pcm(self) -> npt.NDArray[np.int16]:
        """Everything received since the last read as one int16 array (empty when nothing came)."""
        frames = self.read()
        return np.frombuffer(b"".join(frames), dtype="<i2") if frames else np.zeros(0, dtype=np.int16)

    def write(self, pcm: bytes) -> int:
        """Queue PCM16 8 kHz audio to send; returns the whole frames queued. Frames beyond capacity are dropped.

        A trailing partial frame waits for the next write. Thread-safe for any number of writers.
        """
        with self._write_lock:
            data = self._pending + pcm
            whole = len(data) - len(data) % FRAME_BYTES
            self._pending = data[whole:]
            queued = 0
            for start in range(0, whole, FRAME_BYTES):
                if len(self._tx) >= self._max_tx:
                    self.tx_dropped += (whole - start) // FRAME_BYTES
                    break
                self._tx.append(to_byte_vector(data[start : start + FRAME_BYTES]))
                queued += 1
            return queued

    def clear(self) -> int:
        """Drop all audio waiting to be sent (barge-in); returns how many frames were dropped."""
        with self._write_lock:
            dropped = len(self._tx)
            self._tx.clear()
            self._pending = b""
            return dropped

    def stats(self) -> dict[str, int]:
        """Counters: frames received/dropped, sent/underrun (silence sent), refused writes, callback errors."""
        c = self._counters
        return {"rx_frames": c.rx_frames, "rx_dropped": c.rx_dropped, "tx_frames": c.tx_frames,
                "tx_underruns": c.tx_underruns, "tx_dropped": self.tx_dropped, "errors": c.errors}
