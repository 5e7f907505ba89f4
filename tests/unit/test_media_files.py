"""Pure pieces of the media toolkit and the sandbox's RTP: WAV checks, RTP parsing, RFC 4733 packets."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import pytest

from sandbox.rtp import event_packets, rtp_payload
from worker.sip.answer import MediaError
from worker.sip.media.player import wav_duration_s
from worker.sip.media.recorder import wav_is_whole


def write_wav(path: Path, frames: int, *, rate: int = 8000, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"\0\0" * frames * channels)
    return path


def test_wav_duration_and_refusals(tmp_path: Path) -> None:
    """A mono 16-bit WAV gives its length; stereo or unreadable files are a MediaError naming the file."""
    assert wav_duration_s(str(write_wav(tmp_path / "a.wav", 16000))) == (2.0, 8000)
    with pytest.raises(MediaError, match=r"b\.wav: not 16-bit PCM mono"):
        wav_duration_s(str(write_wav(tmp_path / "b.wav", 10, channels=2)))
    with pytest.raises(MediaError, match=r"missing\.wav: cannot read"):
        wav_duration_s(str(tmp_path / "missing.wav"))


def test_wav_is_whole_only_when_the_header_matches_the_file(tmp_path: Path) -> None:
    """A finished WAV is whole; one whose header still says 0 bytes (a recorder not yet closed) is not."""
    path = write_wav(tmp_path / "rec.wav", 800)
    assert wav_is_whole(str(path))
    data = bytearray(path.read_bytes())
    data[4:8] = (0).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    assert not wav_is_whole(str(path))
    assert not wav_is_whole(str(tmp_path / "none.wav"))


def test_rtp_payload_skips_csrcs_and_extension() -> None:
    """Payload type and payload of RTP, past CSRCs and a header extension; not-RTP is None."""
    header = struct.pack("!BBHII", 0x80 | 0x10 | 1, 0, 1, 160, 7) + b"\0\0\0\1" + struct.pack("!HH", 0xBEDE, 1)
    assert rtp_payload(header + b"\0\0\0\0" + b"\xff" * 160) == (0, b"\xff" * 160)
    assert rtp_payload(b"\x00" * 20) is None


def test_event_packets_follow_rfc_4733() -> None:
    """Key 1 on PT 101: marker on the first, one timestamp, growing duration, three end packets."""
    packets = event_packets("1", 101, seq=65534, timestamp=1000, ssrc=9)
    assert len(packets) == 8
    fields = [struct.unpack("!BBHIIBBH", p) for p in packets]
    assert fields[0][1] == 0x80 | 101 and all(f[1] == 101 for f in fields[1:])
    assert [f[2] for f in fields[:3]] == [65534, 65535, 0]
    assert {f[3] for f in fields} == {1000}
    assert all(f[5] == 1 for f in fields)
    assert [bool(f[6] & 0x80) for f in fields] == [False] * 5 + [True] * 3
    assert [f[7] for f in fields] == [160, 320, 480, 640, 800, 800, 800, 800]
