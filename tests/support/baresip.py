"""baresip as a real third-party callee that records what it hears.

:func:`start_baresip_callee` runs ``baresip`` (Debian's baresip-core) with a
config directory of its own: SIP on a free 127.0.0.1 port, auto-answer, G.711
only, its outgoing audio read from a WAV file (``aufile``), and every call's
received audio written to ``<workdir>/rec/dump-*-dec.wav`` by the ``sndfile``
filter. The null ALSA device clocks its player, so reception runs at real
time with no sound card. Stop the peer before reading the WAV: libsndfile
writes the header's sizes when the call's audio closes.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.needs import unavailable
from tests.support.sipp import _die_with_parent

BARESIP = shutil.which("baresip") or "/usr/bin/baresip"
HOST = "127.0.0.1"
RATE = 8000

_CONFIG = """\
poll_method		epoll
sip_listen		{host}:{port}
net_interface		{host}
audio_player		alsa,null
audio_alert		alsa,null
audio_source		aufile,{source}
module_path		/usr/lib/baresip/modules
module			g711.so
module			alsa.so
module			aufile.so
module			sndfile.so
module_app		account.so
module_app		menu.so
snd_path		{rec}
"""


def write_tone(path: Path, seconds: float, freq_hz: float, *, rate: int = RATE, amplitude: float = 0.5) -> Path:
    """A 16-bit mono PCM WAV of a sine tone (``freq_hz`` 0: silence)."""
    t = np.arange(int(seconds * rate)) / rate
    samples = (amplitude * 32767 * np.sin(2 * np.pi * freq_hz * t)).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return path


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as wav:
        data = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(np.float64)
        return data, wav.getframerate()


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.argmax(spectrum) * rate / len(samples))


def loud_span(samples: np.ndarray, rate: int, *, frame_s: float = 0.01, threshold: float = 1000.0) -> tuple[float, int]:
    """(seconds from the first to the last loud frame, how many quiet frames lie between them)."""
    n = int(rate * frame_s)
    frames = samples[: len(samples) // n * n].reshape(-1, n)
    loud = np.sqrt((frames**2).mean(axis=1)) > threshold
    idx = np.flatnonzero(loud)
    if len(idx) == 0:
        return 0.0, 0
    inner = loud[idx[0] : idx[-1] + 1]
    return len(inner) * frame_s, int((~inner).sum())


class BaresipCallee:
    """A running baresip that answers every call at once."""

    def __init__(self, workdir: Path, port: int, process: subprocess.Popen[bytes]) -> None:
        self.workdir = workdir
        self.port = port
        self.process = process

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def uri(self, user: str = "callee") -> str:
        return f"sip:{user}@{self.address}"

    def recordings(self) -> list[Path]:
        """What it received, one WAV per call, oldest first."""
        return sorted((self.workdir / "rec").glob("dump-*-dec.wav"))

    def log(self) -> str:
        return (self.workdir / "baresip.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def start_baresip_callee(workdir: Path, *, source_hz: float = 0.0, ready_timeout_s: float = 10.0,
                         source_wav: Path | None = None, users: tuple[str, ...] = ("callee",),
                         rtp_ports: tuple[int, int] | None = None) -> BaresipCallee:
    """baresip answering on a free loopback port; it sends ``source_wav`` (a mono 8 kHz WAV), else ``source_hz``
    (0: silence), and records what it hears; it answers calls to each of ``users``."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "rec").mkdir(exist_ok=True)
    source = source_wav or write_tone(workdir / "source.wav", 120.0, source_hz, amplitude=0.3)
    (workdir / "accounts").write_text("".join(f"<sip:{user}@{HOST}>;regint=0;answermode=auto\n" for user in users))
    last = ""
    for _ in range(3):  # a free port can be taken by someone else before baresip binds it
        port = _free_port()
        config = _CONFIG.format(host=HOST, port=port, source=source, rec=workdir / "rec")
        if rtp_ports is not None:  # RTP/RTCP from this range only (a capture filter can then name it)
            config += f"rtp_ports\t\t{rtp_ports[0]}-{rtp_ports[1]}\n"
        (workdir / "config").write_text(config)
        log_path = workdir / "baresip.log"
        with open(log_path, "wb") as out:
            proc = subprocess.Popen([BARESIP, "-f", str(workdir)], stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, cwd=workdir, preexec_fn=_die_with_parent)
        peer = BaresipCallee(workdir, port, proc)
        deadline = time.monotonic() + ready_timeout_s
        while proc.poll() is None and time.monotonic() < deadline:
            if "baresip is ready" in peer.log():
                return peer
            time.sleep(0.02)  # another process's start-up: no event to wait on
        peer.stop()
        last = peer.log()[-2000:]
    raise RuntimeError(f"baresip did not start: {last}")


@pytest.fixture
def baresip_callee(tmp_path: Path) -> Iterator[BaresipCallee]:
    """A baresip callee sending silence; stopped at teardown."""
    if not Path(BARESIP).exists():
        unavailable("baresip is not installed (Debian package baresip-core)")
    peer = start_baresip_callee(tmp_path / "baresip")
    yield peer
    with contextlib.suppress(Exception):
        peer.stop()
