"""Early media before the answer: is the 183's audio a carrier announcement? (SIP thread)

A call that rings may play early media (183 Session Progress with SDP):
ringback, a coloured ring-back tone (彩铃), or a carrier's "the subscriber
you dialled cannot be reached". For calls whose flow starts with ``amd``
(the script factory says ``early_media = True``), the runtime attaches an
:class:`~worker.sip.audio_tap.AudioTap` to the ringing call's audio and feeds
:class:`~shared.amd_early.EarlyMediaAnalyzer` every loop turn, until the
answer or the end.

What the verdict is used for, where it helps and cannot hurt a person:

* a call that ends unanswered after an announcement is ``machine`` (tried
  again later, like no_answer) rather than ``no_answer``/``transient``
  (:func:`worker.dialing.classify_result`); a final SIP refusal (404, 603...)
  keeps its own outcome;
* a call answered after an announcement: the ``amd`` step decides
  ``machine``/``announcement`` at once (the carrier's media server answered).

It never cancels a ringing call: a coloured ring-back tone reads as speech
(shared/amd_early.py), and cancelling would lose a person about to answer.
The tap is detached at the answer (CallMedia then owns the call's audio),
when the call ends, and before libDestroy, always on the SIP thread.
"""

from __future__ import annotations

import logging
from typing import Any

import pjsua2 as pj

from shared.amd_early import EarlyMediaAnalyzer, EarlyMediaVerdict
from worker.sip.audio_tap import AudioTap

log = logging.getLogger("worker.sip")


def wants_early_media(script_factory: object) -> bool:
    """Whether the call's answer script asked for early-media analysis (a flow starting with amd)."""
    return bool(getattr(script_factory, "early_media", False))


def watch_early_media(watch: EarlyMediaWatch | None, audio: Any | None,
                      script_factory: object) -> EarlyMediaWatch | None:
    """One loop turn of a ringing call: start watching once its early audio exists (if its flow asked), feed it.

    A tap pjsua refuses ends the analysis (the tap is freed); the call goes on regardless.
    """
    if watch is None:
        if audio is None or not wants_early_media(script_factory):
            return None
        watch = EarlyMediaWatch()
    try:
        watch.poll(audio)
    except pj.Error as exc:
        log.debug("early-media tap refused: %s", exc.reason)
        watch.close()
        return None
    return watch


class EarlyMediaWatch:
    """One ringing call's early-media analysis. Every method runs on the SIP thread."""

    def __init__(self) -> None:
        self._analyzer = EarlyMediaAnalyzer()
        self._tap: AudioTap | None = None
        self._port: int | None = None
        self.heard = False  # any early audio arrived

    def poll(self, audio: Any | None) -> None:
        """Follow the call's current AudioMedia (None: no early media yet) and analyse what arrived."""
        port = None if audio is None else int(audio.getPortId())
        if port != self._port:
            if self._tap is None and audio is not None:
                self._tap = AudioTap(name="early-media")
                self._tap.attach(audio)
            elif self._tap is not None:
                if audio is None:
                    self._tap.pause()
                else:
                    self._tap.rebind(audio)
            self._port = port
        self._feed()

    def close(self) -> dict[str, object] | None:
        """Detach (SIP thread) and return the verdict as JSON, or None when no early audio came."""
        if self._tap is not None:
            self._feed()
            self._tap.detach()
            self._tap = None
        return self.verdict().to_json() if self.heard else None

    def verdict(self) -> EarlyMediaVerdict:
        return self._analyzer.verdict()

    def _feed(self) -> None:
        if self._tap is None:
            return
        for frame in self._tap.read():
            self.heard = True
            self._analyzer.feed(frame)
