"""Each answered sandbox call's audio: a socket of its own, what the callee heard, keys it presses.

The callee of an answered call receives the caller's RTP on a UDP socket made
for that call, decodes G.711 (PCMU/PCMA, numpy tables) and counts how much of
it was sound rather than silence, so the demo can say "heard 3.1 s of
prompt"; with a recordings directory it also writes what it heard to a WAV
per call. It presses keys as RFC 4733 telephone-events on the payload type
the caller offered, each key a few 20 ms packets and three end packets, as a
phone does. Runs on the PBX's one thread: sockets are non-blocking and the
server's selector tells :meth:`RtpSession.receive` when to read.
"""

from __future__ import annotations

import functools
import logging
import re
import secrets
import socket
import struct
import time
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sandbox.sdp import RemoteAudio

log = logging.getLogger("sandbox.pbx")

RATE = 8000
_LOUD_RMS = 500.0  # a prompt is far above this; pjsua sends no packets for silence (VAD) or near-zero ones
_EVENT_CODES = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}
_EVENT_PACKETS = 5  # 100 ms of tone
_END_COPIES = 3  # RFC 4733, "Retransmission of Final Packet": the end packet is sent three times
_MAX_DATAGRAM = 2048


def _ulaw_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent, mantissa = (u >> 4) & 7, u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_table() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    exponent, mantissa = (a >> 4) & 7, a & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    return np.where(a & 0x80, magnitude, -magnitude).astype(np.int16)


DECODE = {0: _ulaw_table(), 8: _alaw_table()}


def rtp_payload(packet: bytes) -> tuple[int, bytes] | None:
    """(payload type, payload) of an RTP packet, or None when it is not one."""
    if len(packet) < 12 or packet[0] >> 6 != 2:
        return None
    count, has_ext, padded = packet[0] & 0x0F, packet[0] & 0x10, packet[0] & 0x20
    start = 12 + 4 * count
    if has_ext:
        if len(packet) < start + 4:
            return None
        start += 4 + 4 * struct.unpack_from("!H", packet, start + 2)[0]
    end = len(packet) - (packet[-1] if padded and packet else 0)
    return (packet[1] & 0x7F, packet[start:end]) if start <= end else None


def event_packets(digit: str, payload_type: int, seq: int, timestamp: int, ssrc: int) -> list[bytes]:
    """The RTP packets of one key press (RFC 4733): updates every 20 ms, then the end three times."""
    code = _EVENT_CODES[digit]
    packets = []
    for i in range(_EVENT_PACKETS + _END_COPIES):
        end = i >= _EVENT_PACKETS
        duration = 160 * min(i + 1, _EVENT_PACKETS)
        marker = 0x80 if i == 0 else 0
        header = struct.pack("!BBHII", 0x80, marker | payload_type, (seq + i) & 0xFFFF, timestamp, ssrc)
        packets.append(header + struct.pack("!BBH", code, (0x80 if end else 0) | 10, duration))
    return packets


class RtpSession:
    """One answered call's media on the callee side."""

    def __init__(self, sock: socket.socket, remote: RemoteAudio | None, record_to: Path | None) -> None:
        self.sock = sock
        self.remote = remote
        self.record_to = record_to
        self.heard_samples = 0
        self.first_heard_at: float | None = None
        self.pressed = ""
        self.on_first_audio: Callable[[], None] | None = None
        self._chunks: list[np.ndarray] = []
        self._seq = secrets.randbelow(0x10000)
        self._timestamp = secrets.randbelow(2**32)
        self._ssrc = secrets.randbelow(2**32)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    @property
    def heard_s(self) -> float:
        """Seconds of sound (not silence) received from the caller."""
        return self.heard_samples / RATE

    def receive(self) -> None:
        """Drain the socket: decode audio, note when sound first arrived."""
        for _ in range(64):
            try:
                packet = self.sock.recv(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            parsed = rtp_payload(packet)
            if parsed is None or parsed[0] not in DECODE:
                continue
            samples = DECODE[parsed[0]][np.frombuffer(parsed[1], dtype=np.uint8)]
            self._chunks.append(samples)
            if len(samples) and float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) > _LOUD_RMS:
                self.heard_samples += len(samples)
                if self.first_heard_at is None:
                    self.first_heard_at = time.monotonic()
                    if self.on_first_audio is not None:
                        self.on_first_audio()

    def press(self, digit: str, schedule: Callable[[float, Callable[[], None]], object]) -> None:
        """Send one key as telephone-events, a packet every 20 ms (on the PBX's timers)."""
        remote = self.remote
        if remote is None or remote.event_payload is None:
            log.warning("cannot press %s: the caller offered no telephone-event", digit)
            return
        packets = event_packets(digit, remote.event_payload, self._seq, self._timestamp, self._ssrc)
        self._seq += len(packets)
        self._timestamp = (self._timestamp + 160 * (_EVENT_PACKETS + 5)) & 0xFFFFFFFF
        self.pressed += digit
        for i, packet in enumerate(packets):
            delay = 0.02 * min(i, _EVENT_PACKETS)  # updates every 20 ms, then the end packets together
            schedule(delay, functools.partial(self._send, packet))

    def _send(self, packet: bytes) -> None:
        if self.remote is None or self.sock.fileno() < 0:
            return
        try:
            self.sock.sendto(packet, (self.remote.host, self.remote.port))
        except OSError as exc:
            log.warning("RTP send failed: %s", exc.strerror)

    def close(self) -> Path | None:
        """Close the socket; write what was heard to the WAV, if recording. Returns the file."""
        self.sock.close()
        if self.record_to is None:
            return None
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)
        try:
            with wave.open(str(self.record_to), "wb") as wav:
                wav.setnchannels(1)
                wav.setsampwidth(2)
                wav.setframerate(RATE)
                wav.writeframes(audio.astype("<i2").tobytes())
        except OSError as exc:
            log.warning("cannot write %s: %s", self.record_to, exc.strerror)
            return None
        return self.record_to


def open_session(host: str, remote: RemoteAudio | None, recordings: Path | None, number: str,
                 call_id: str) -> RtpSession:
    """A new non-blocking socket on ``host`` for one call, recording under ``recordings`` if given."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.setblocking(False)
    record_to = None
    if recordings is not None:
        safe = re.sub(r"[^0-9A-Za-z+_-]", "_", f"{number}-{call_id}")[:80]
        record_to = recordings / f"{safe}.wav"
    return RtpSession(sock, remote, record_to)
