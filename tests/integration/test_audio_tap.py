"""The audio tap against a real callee: sipp plays a tone as RTP/PCMU, the tap hears it in Python.

The pjsua2 side runs in a subprocess (tests/support/tap_harness.py) with the
SIP-thread discipline of the worker; a crash there fails the test instead of
killing pytest. The bounded-queue rules are also pinned without a call.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pjsua2 as pj
import pytest

from tests.support.sipp import SippFactory, free_port
from tests.support.tap_runner import run_harness
from worker.sip.audio_tap import FRAME_BYTES, AudioTap, _Counters, _TapPort, to_byte_vector, vector_bytes

pytestmark = pytest.mark.integration

TONE_HZ = 700.0


def tone_pcm(seconds: float) -> bytes:
    t = np.arange(round(seconds * 8000)) / 8000
    return (12000 * np.sin(2 * np.pi * TONE_HZ * t)).astype("<i2").tobytes()


def test_tap_hears_the_callee_tone(sipp_uas: SippFactory, tmp_path: Path) -> None:
    """A 700 Hz tone sent by sipp as PCMU arrives through the tap as 320-byte frames whose peak is 700 Hz.

    Half-way the tap is rebound to the call's AudioMedia (as after a re-INVITE); frames keep coming.
    """
    result = run_harness(sipp_uas, tmp_path, tone_pcm(6.0), "tone", "--seconds", "2.5")
    stats = result["stats"]
    assert stats["errors"] == 0 and stats["rx_dropped"] == 0
    assert result["frames"] == stats["rx_frames"] > result["rx_frames_at_rebind"] > 0  # frames on both sides
    pcm = np.frombuffer(bytes.fromhex(result["pcm_hex"]), dtype="<i2").astype(np.float64)
    assert pcm.size == result["frames"] * FRAME_BYTES // 2
    loud = np.flatnonzero(np.abs(pcm.reshape(-1, FRAME_BYTES // 2)).mean(axis=1) > 1000)
    assert loud.size > 50  # over a second of the tone, whatever the jitter buffer's start
    heard = pcm[loud[0] * FRAME_BYTES // 2 :]  # from the first loud frame: the tone runs past the end
    spectrum = np.abs(np.fft.rfft(heard * np.hanning(heard.size)))
    peak_hz = np.argmax(spectrum) * 8000 / heard.size
    assert abs(peak_hz - TONE_HZ) < 5


def test_two_hundred_ports_attach_and_detach_on_a_live_call_under_load(sipp_uas: SippFactory, tmp_path: Path) -> None:
    """200 taps made and freed on the SIP thread, half of them sending, while a thread burns CPU: no crash."""
    result = run_harness(sipp_uas, tmp_path, tone_pcm(8.0), "churn", "--ports", "200")
    per_port = result["rx_frames_per_port"]
    assert len(per_port) == 200
    assert sum(per_port) == result["frames"] > 0


def test_audio_written_to_the_tap_reaches_the_callee_and_comes_back(sipp_uas: SippFactory, tmp_path: Path) -> None:
    """Bursts written to a sending tap go out as RTP; sipp echoes them; the same tap hears each one back."""
    media_port = str(free_port())
    result = run_harness(sipp_uas, tmp_path, None, "echo", "--seconds", "4", scenario="answer_fast",
                         sipp_args=("-rtp_echo", "-mp", media_port))
    stats = result["stats"]
    assert stats["errors"] == 0 and stats["tx_dropped"] == 0
    assert len(result["rtt_ms"]) >= 3
    assert stats["tx_frames"] >= len(result["rtt_ms"])


def test_byte_vector_round_trip() -> None:
    """The ctypes fast path reads and writes a ByteVector byte for byte, like the slow path."""
    data = bytes(range(256)) + bytes(64)
    vec = to_byte_vector(data)
    assert isinstance(vec, pj.ByteVector)
    assert vector_bytes(vec) == bytes(vec) == data
    assert vector_bytes(pj.ByteVector()) == b""


def test_write_is_bounded_and_counts_what_it_drops() -> None:
    """write() queues whole frames up to capacity, keeps a partial frame, refuses and counts the rest."""
    tap = AudioTap(max_tx_frames=3)
    assert tap.write(bytes(FRAME_BYTES + 100)) == 1
    assert tap.write(bytes(FRAME_BYTES * 4 - 100)) == 2  # 100 + 1180 bytes = 4 frames, room for 2
    assert tap.stats()["tx_dropped"] == 2
    assert tap.clear() == 3
    assert tap.write(bytes(FRAME_BYTES)) == 1


def test_receive_side_is_bounded_and_counts_drops() -> None:
    """The clock-thread callback keeps the newest max_rx_frames frames and counts each it pushed out."""
    tap = AudioTap(max_rx_frames=4)
    port = _TapPort(tap._rx, tap._tx, to_byte_vector(bytes(FRAME_BYTES)), tap._counters)
    try:
        for i in range(6):
            frame = pj.MediaFrame()
            frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
            frame.buf = to_byte_vector(bytes([i]) * FRAME_BYTES)
            frame.size = FRAME_BYTES
            port.onFrameReceived(frame)
        empty = pj.MediaFrame()  # a NONE frame (nothing from the call this tick) reads as silence
        port.onFrameReceived(empty)
        out = pj.MediaFrame()
        port.onFrameRequested(out)  # nothing queued: silence, counted as an underrun
        assert vector_bytes(out.buf) == bytes(FRAME_BYTES)
    finally:
        pj.AudioMediaPort.__swig_destroy__(port)
    frames = tap.read()
    assert [f[0] for f in frames] == [3, 4, 5, 0]
    assert tap.read() == []
    stats = tap.stats()
    assert (stats["rx_frames"], stats["rx_dropped"], stats["tx_underruns"], stats["errors"]) == (7, 3, 1, 0)
    assert isinstance(tap._counters, _Counters)


def test_read_pcm_is_numpy_ready() -> None:
    """read_pcm() joins what arrived into one int16 array; empty when nothing came."""
    tap = AudioTap()
    assert tap.read_pcm().size == 0
    tap._rx.append((0.0, np.arange(160, dtype="<i2").tobytes()))
    assert tap.read_pcm().tolist() == list(range(160))
