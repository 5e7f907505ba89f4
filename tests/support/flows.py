"""Flow files and prompt WAVs for tests: a tone generator and the issue's example flow."""

from __future__ import annotations

import io
import math
import struct
import wave
from pathlib import Path

from shared.flow.engine import start, step
from shared.flow.model import Flow
from shared.flow.signals import Action, Event
from shared.flow.state import State

ISSUE_FLOW = """
start = "offer"

[steps.offer]
play = "offer.wav"
next = "menu"

[steps.menu]
gather = { num_digits = 1, timeout_s = 6 }
say = "Press 1 to speak with an advisor, 9 to stop receiving calls."
branches = { "1" = "agent", "9" = "optout", none = "bye" }

[steps.agent]
transfer = "sip:advisors@127.0.0.1:5060"
on_failure = "bye"

[steps.optout]
opt_out = true
next = "bye"

[steps.bye]
hangup = true
"""


def tone_wav(seconds: float = 1.0, hz: float = 1000.0, rate: int = 8000, amplitude: int = 8000) -> bytes:
    """A mono 16-bit PCM sine tone: a prompt whose arrival a callee can recognise."""
    frames = b"".join(struct.pack("<h", int(amplitude * math.sin(2 * math.pi * hz * i / rate)))
                      for i in range(int(seconds * rate)))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return buf.getvalue()


def write_flow(folder: Path, text: str = ISSUE_FLOW, name: str = "flow.toml", *, wav_s: float = 1.0) -> Path:
    """The flow file, with an ``offer.wav`` tone beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "offer.wav").write_bytes(tone_wav(wav_s))
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def run(flow: Flow, events: list[Event]) -> tuple[State, list[Action]]:
    """Drive the pure engine from the answer through ``events``; every action it asked for, in order."""
    state, acts = start(flow, 0.0)
    out = list(acts)
    for event in events:
        state, acts = step(flow, state, event)
        out.extend(acts)
    return state, out
