"""Runs one call's :class:`~worker.sip.answer.AnswerScript` on the SIP thread.

The runtime owns the call; this owns the script and the call's
:class:`~worker.sip.media.control.CallMedia`, and is the one place that calls
into the script, each call guarded: a script that raises is recorded and the
call is hung up, never the SIP thread taken down.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from worker.sip.answer import AnswerScript, HangupSide
from worker.sip.media.control import CallMedia, PlaceLeg

log = logging.getLogger("worker.sip")


class ScriptedCall:
    """The script and media of one call; every method runs on the SIP thread."""

    def __init__(self, factory: Callable[[], AnswerScript]) -> None:
        self._factory = factory
        self._script: AnswerScript | None = None
        self.media: CallMedia | None = None
        self.error: str | None = None
        self._hangup_told = False
        self._want_hangup = False

    @property
    def started(self) -> bool:
        return self.media is not None

    def start(
        self, call: Any, answer_at: datetime | None, now: float, hang_up: Callable[[], None], place_leg: PlaceLeg,
        *, early_media: Mapping[str, object] | None = None,
    ) -> None:
        """The call is CONFIRMED: build the script and run on_answer."""
        lag = 0.0 if answer_at is None else max(0.0, (datetime.now(UTC) - answer_at).total_seconds())
        self.media = CallMedia(call, now - lag, hang_up, place_leg)
        self.media.early_media = early_media
        try:
            self._script = self._factory()
        except Exception as exc:
            self._fail("script factory", exc)
            return
        media = self.media
        self._guard("on_answer", lambda s: s.on_answer(media, now))

    def tick(self, now: float) -> bool:
        """One loop turn while the call is up; True when the call should be hung up now."""
        if self.media is None:
            return False
        for notice in self.media.poll(now):
            self._deliver(notice.kind, notice.args, now)
        self._guard("on_tick", lambda s: s.on_tick(now))
        return self._want_hangup

    def ended(self, by: HangupSide, now: float) -> None:
        """The call reached DISCONNECTED: stop the media, tell the script once."""
        if self.media is None or self._hangup_told:
            return
        self._hangup_told = True
        for notice in self.media.poll(now):  # facts that arrived with the end (a last digit)
            self._deliver(notice.kind, notice.args, now)
        self.media.end(now)
        self._guard("on_hangup", lambda s: s.on_hangup(by, now))

    def idle(self, now: float) -> bool:
        """True when the call may be released: its media destroyed, every notice delivered."""
        if self.media is None:
            return True
        for notice in self.media.poll(now):
            self._deliver(notice.kind, notice.args, now)
        return self.media.idle(now)

    @property
    def holds_leg(self) -> bool:
        """A bridged leg of this call holds a pjsua call slot."""
        return self.media is not None and self.media.has_leg

    def release_ended_leg(self) -> None:
        if self.media is not None:
            self.media.release_ended_leg()

    def close(self) -> None:
        if self.media is not None:
            self.media.close()

    def flow(self) -> Mapping[str, object] | None:
        """The script's report for CallResult.flow, with the error if it failed."""
        if self.media is None:
            return None
        report: dict[str, object] = {}
        if self._script is not None:
            try:
                report = dict(self._script.report())
            except Exception as exc:
                self.error = self.error or f"report: {type(exc).__name__}: {exc}"
        if self.error is not None:
            report["error"] = self.error
        return report

    # ----------------------------------------------------------------- internals
    def _deliver(self, kind: str, args: tuple[Any, ...], now: float) -> None:
        if kind == "dtmf":
            self._guard("on_dtmf", lambda s: s.on_dtmf(args[0], now))
        elif kind == "transfer":
            self._guard("on_transfer", lambda s: s.on_transfer(args[0], args[1], now))
        elif kind == "recording":
            self._guard("on_recording", lambda s: s.on_recording(args[0], args[1], now))

    def _guard(self, what: str, fn: Callable[[AnswerScript], None]) -> None:
        script = self._script
        if script is None or self.error is not None:
            return
        try:
            fn(script)
            if not self._want_hangup and script.done():
                self._want_hangup = True
        except Exception as exc:
            self._fail(what, exc)

    def _fail(self, what: str, exc: Exception) -> None:
        # The traceback as text, never exc_info: a log record holding the traceback would keep
        # the runtime's frames, and the PjCall in them, alive past libDestroy (pjsua asserts).
        log.error("call flow failed in %s:\n%s", what, "".join(traceback.format_exception(exc)).rstrip())
        self.error = f"{what}: {type(exc).__name__}: {exc}"
        self._want_hangup = True
