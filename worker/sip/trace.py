"""Turns the events of one outgoing call into a :class:`CallResult`.

pjsua reports a call as a stream of transaction events (each INVITE we send,
each response to it) and state changes (CONFIRMED, DISCONNECTED). Folding
them into a result is pure logic, kept here so it can be tested without a SIP
stack and so the pjsua callbacks stay one-liners. The digest challenges pjsua
answers itself never arrive as events; they are inferred where pjsua re-sends
the INVITE (see :mod:`worker.sip.responses`).
"""

from __future__ import annotations

from datetime import datetime

from worker.sip.config import CallResult, HangupBy

_CHALLENGES = frozenset({401, 407})


class CallTrace:
    """Mutable record of one call, fed from the SIP thread only."""

    def __init__(self, uri: str, invite_at: datetime) -> None:
        self.uri = uri
        self.invite_at = invite_at
        self.call_id = ""
        self.provisional: list[tuple[int, datetime]] = []
        self.answer_at: datetime | None = None
        self.answer_reason = ""
        self.end_at: datetime | None = None
        self.local_hangup = False
        self.ring_timeout_fired = False
        self.invite_cseq: int | None = None  # of the INVITE last sent
        self.challenges: list[int] = []
        self._final: tuple[int, str] | None = None
        self._last: tuple[int, str] = (0, "")
        self._error_hint: str | None = None

    @property
    def ended(self) -> bool:
        return self.end_at is not None

    @property
    def answered(self) -> bool:
        return self.answer_at is not None

    def on_invite_sent(self, cseq: int, challenge: int | None) -> None:
        """An INVITE went out: the first, or pjsua's re-send after ``challenge`` (401/407).

        Only a re-send before any final response counts: a challenge to a
        re-INVITE inside an answered call is no part of setting it up.
        """
        if (challenge is not None and self.invite_cseq is not None
                and self._final is None and self.answer_at is None):
            self.challenges.append(challenge)
        self.invite_cseq = cseq

    def on_response(self, code: int, reason: str, at: datetime) -> None:
        """A response to our INVITE arrived from the peer."""
        if code < 200:
            self.provisional.append((code, at))
            return
        self._final = (code, reason)
        if 200 <= code < 300 and self.answer_at is None:
            self.answer_at = at
            self.answer_reason = reason

    def on_confirmed(self, at: datetime) -> None:
        """The call reached CONFIRMED; a fallback in case the 2xx event was missed."""
        if self.answer_at is None:
            self.answer_at = at
            self.answer_reason = "OK"

    def on_local_hangup(self, *, ring_timeout: bool = False) -> None:
        """We sent (or asked pjsua to send) CANCEL or BYE."""
        self.local_hangup = True
        if ring_timeout:
            self.ring_timeout_fired = True

    def on_disconnected(self, code: int, reason: str, at: datetime, error_hint: str | None = None) -> None:
        """DISCONNECTED: ``code``/``reason`` are pjsua's last status for the call."""
        if self.end_at is None:
            self.end_at = at
            self._last = (code, reason)
            self._error_hint = error_hint

    def _peer_final(self) -> tuple[int, str] | None:
        """The peer's final response, if it is what ended the call.

        A 401/407 that pjsua answered with credentials is not final; nor is any
        recorded response that differs from the code pjsua ended the call with
        (a retried INVITE that then timed out, for instance), except a 3xx.
        """
        if self._final is None:
            return None
        code, _ = self._final
        if 300 <= code < 400:
            # pjsua never follows a redirect (a toll-fraud guard we keep) and
            # then reports its own 487: the 3xx is the real answer.
            return self._final
        if code in _CHALLENGES and self._last[0] != code:
            return None
        if self._last[0] and self._last[0] != code:
            return None
        return self._final

    def result(self, *, now: datetime | None = None, error: str | None = None) -> CallResult:
        """The finished record. ``error`` overrides, e.g. when the agent stopped mid-call."""
        end_at = self.end_at or now or self.invite_at
        peer_final = self._peer_final()
        status, reason = self._last
        err: str | None = error
        hangup_by: HangupBy
        if self.answer_at is not None:
            status, reason = (self._final if self._final and 200 <= self._final[0] < 300 else (200, "OK"))
            hangup_by = "local" if self.local_hangup else "remote"
        elif peer_final is not None and err is None:
            status, reason = peer_final
            hangup_by = "local" if self.local_hangup else "remote"
        elif self.local_hangup and err is None:
            # We ended it (CANCEL): pjsua reports DISCONNECTED at once with its
            # own 487, before the peer's answer to the CANCEL; that is no error,
            # unless the peer never answered anything at all (a dead trunk).
            if self.ring_timeout_fired and not self.provisional:
                err = "timeout: no response from the peer before the ring timeout"
            hangup_by = "local"
        else:
            if err is None:
                hint = self._error_hint or "no final response from the peer"
                err = f"{hint} (pjsua {status} {reason})".strip()
            hangup_by = "local"
        first = self.provisional[0][1] if self.provisional else None
        return CallResult(
            uri=self.uri,
            call_id=self.call_id,
            provisional=tuple(self.provisional),
            status=status,
            reason=reason,
            invite_at=self.invite_at,
            first_provisional_at=first,
            answer_at=self.answer_at,
            end_at=end_at,
            hangup_by=hangup_by,
            ring_timeout_fired=self.ring_timeout_fired,
            error=err,
            challenges=tuple(self.challenges),
        )
