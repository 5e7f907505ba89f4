"""A real phone (baresip) that answers with a corpus item's audio: a person's "Hello?" or a voicemail greeting.

Shared by the amd integration tests (``dialer call --flow`` and the dial job):
the phone plays the item, then 20 s of silence, over RTP/G.711, and answers
calls to the fictional number's E.164 form (the worker is told to dial only
that variant).
"""

from __future__ import annotations

import wave
from pathlib import Path

from tests.support.amd_corpus import CorpusItem, load_corpus
from tests.support.baresip import BARESIP, BaresipCallee, start_baresip_callee
from tests.support.needs import unavailable

NUMBER = "13900001111"  # fictional


def _items() -> dict[str, CorpusItem]:
    corpus = load_corpus(24)
    human = next(it for it in corpus if it.kind == "human" and not it.meta["dead_air"] and it.meta["noise"] != "none")
    voicemail = next(it for it in corpus if it.kind == "voicemail" and it.meta["noise"] != "none")
    return {"human": human, "voicemail": voicemail}


ITEMS = _items()


def answering_phone(workdir: Path, item: CorpusItem, rtp_ports: tuple[int, int] | None = None) -> BaresipCallee:
    """baresip sending the item's audio, then 20 s of silence (its file source stops at the end)."""
    if not Path(BARESIP).exists():
        unavailable("baresip is not installed (Debian package baresip-core)")
    source = workdir / "source.wav"
    workdir.mkdir(parents=True, exist_ok=True)
    with wave.open(str(source), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(item.pcm() + bytes(2 * 8000 * 20))
    return start_baresip_callee(workdir, source_wav=source, users=("+86" + NUMBER,), rtp_ports=rtp_ports)
