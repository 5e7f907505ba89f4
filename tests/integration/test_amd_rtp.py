"""Corpus audio through RTP, G.711 and the real audio tap: the detector decides as it did on the file.

sipp plays a corpus item as PCMU RTP to a raw pjsua2 endpoint
(tests/support/tap_harness.py); another thread reads the tap and feeds an
AmdDetector, as the ``amd`` flow step will. So the bench's figures hold for
audio that crossed the jitter buffer, the conference bridge and a second
G.711 trip, not only for the pure function.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.amd_corpus import CorpusItem, load_corpus
from tests.support.sipp import SippFactory
from tests.support.tap_runner import run_harness

pytestmark = pytest.mark.integration


def _pick() -> list[CorpusItem]:
    """Two people (not dead air), two voicemail greetings and one carrier announcement from the test subset."""
    corpus = load_corpus(24)
    humans = [it for it in corpus if it.kind == "human" and not it.meta["dead_air"]][:2]
    voicemail = [it for it in corpus if it.kind == "voicemail"][:2]
    carrier = [it for it in corpus if it.kind == "carrier"][:1]
    return humans + voicemail + carrier


ITEMS = _pick()


@pytest.mark.parametrize("item", ITEMS, ids=[it.name for it in ITEMS])
def test_decision_over_rtp_matches_the_label(sipp_uas: SippFactory, tmp_path: Path, item: CorpusItem) -> None:
    """HUMAN for a person, MACHINE for a greeting or announcement, decided on tapped RTP audio within 5 s."""
    result = run_harness(sipp_uas, tmp_path, item.pcm(), "amd", "--seconds", "8")
    amd = result["amd"]
    assert amd["decision"] == item.label, (item.name, item.meta["text"], amd)
    assert amd["decided_at_s"] <= 5.0
