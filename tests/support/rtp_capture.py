"""The RTP a callee received, on the wire's own clock: tshark on loopback, G.711 decoded with numpy.

A phone's recording (baresip's ``sndfile``) writes the packets it decoded one
after another, so the silences pjsua does not send (VAD) vanish from it and
its time axis says nothing about *when* a message arrived. For "the message
started after the voicemail beep" the test needs arrival times: this captures
the callee's RTP port range with tshark and returns, for each direction, the
decoded audio of every packet with its arrival time.

The capture filter names a port range chosen for the callee alone (other
tests share loopback), and the callee is told to use it (baresip's
``rtp_ports``).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sandbox.rtp import DECODE
from tests.support.sipp import _die_with_parent

TSHARK = shutil.which("tshark") or "/usr/bin/tshark"


@dataclass(frozen=True)
class Packet:
    at: float  # capture time (epoch seconds)
    src_port: int
    dst_port: int
    audio: np.ndarray  # decoded PCM samples (float)


def free_port_range(width: int = 4) -> int:
    """An even port whose ``width`` neighbours are free now (UDP), for a callee's RTP/RTCP."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1] & ~1
        socks = []
        try:
            for port in range(base, base + width):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free UDP port range")


@contextlib.contextmanager
def capture(path: Path, low: int, high: int, *, ready_timeout_s: float = 10.0) -> Iterator[Path]:
    """tshark writing UDP on ports ``low``-``high`` of loopback to ``path`` while the block runs."""
    log = path.with_suffix(".log")
    with open(log, "wb") as out:
        proc = subprocess.Popen([TSHARK, "-i", "lo", "-f", f"udp portrange {low}-{high}", "-w", str(path)],
                                stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    try:
        deadline = time.monotonic() + ready_timeout_s
        while "Capturing on" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tshark did not start: {log.read_text(errors='replace')[-1000:]}")
            time.sleep(0.05)  # another process's start-up: no event to wait on
        yield path
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def rtp_packets(path: Path) -> list[Packet]:
    """Every G.711 RTP packet in the capture, in order, with its payload decoded."""
    fields = ["frame.time_epoch", "udp.srcport", "udp.dstport", "rtp.p_type", "rtp.payload"]
    cmd = [TSHARK, "-r", str(path), "-o", "rtp.heuristic_rtp:TRUE", "-Y", "rtp", "-T", "fields"]
    for field in fields:
        cmd += ["-e", field]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout
    packets = []
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) != 5 or not parts[3] or not parts[4]:
            continue
        pt = int(parts[3])
        if pt not in DECODE:
            continue
        payload = bytes.fromhex(parts[4].replace(":", ""))
        audio = DECODE[pt][np.frombuffer(payload, dtype=np.uint8)].astype(np.float64)
        packets.append(Packet(float(parts[0]), int(parts[1]), int(parts[2]), audio))
    return packets
