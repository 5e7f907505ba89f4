"""What a SIP final response means for the lead, and what the dialer does next.

Pure: the worker's SIP agent reports facts (status code, whether the call rang,
whether our own ring timeout cancelled it); this module turns them into one
:class:`Outcome` (the column value, the metric label and the CLI word) and one
:class:`Action`. The table is DESIGN.md's:

====================================  ==============  ============================
SIP final response                    outcome         action
====================================  ==============  ============================
2xx                                   answered        complete
486, 600                              busy            retry later (campaign policy)
480; 408 after ringing; 487 after     no_answer       retry later
our ring timeout
603                                   rejected        complete, no retry
404, 484, 485, 604 before any 18x     not_found       next number variant now
401, 407, 403                         auth_failed     re-register, retry once
500, 502, 503, 504, 408 before any    transient       backoff, then retry later
18x, no response (transport/timeout),
487 that we did not cause
anything else (3xx, other 4xx-6xx,    failed          complete, code kept
404 family after ringing)
====================================  ==============  ============================

A 404 after a 180 is not a format failure: the number was routed and rang, so
trying ``+86`` next would call the same person again.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum


class Outcome(StrEnum):
    """Result of one call attempt, or of a job when no call was placed."""

    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    REJECTED = "rejected"
    NOT_FOUND = "not_found"
    INVALID_NUMBER = "invalid_number"
    AUTH_FAILED = "auth_failed"
    TRANSIENT = "transient"
    FAILED = "failed"
    WORKER_LOST = "worker_lost"
    CANCELLED = "cancelled"
    SKIPPED_DNC = "skipped_dnc"
    # What an answered call's flow achieved (shared/flow/outcome.py); all final.
    TRANSFERRED = "transferred"
    TRANSFER_FAILED = "transfer_failed"
    OPTED_OUT = "opted_out"
    MESSAGE_PLAYED = "message_played"
    ABANDONED = "abandoned"
    # An answering machine answered (the amd step, shared/flow/listen.py): see MACHINE_OUTCOMES.
    MACHINE = "machine"
    VOICEMAIL_LEFT = "voicemail_left"
    AGENT_UNAVAILABLE = "agent_unavailable"  # a stream step could not reach its AI agent; the fallback ran


class Action(StrEnum):
    """What the worker does after a classified attempt."""

    COMPLETE = "complete"
    RETRY_LATER = "retry_later"
    NEXT_VARIANT = "next_variant"
    REREGISTER = "reregister"
    BACKOFF = "backoff"


class SipStatus(IntEnum):
    """The final responses the dialer treats specially (RFC 3261 phrases)."""

    OK = 200
    UNAUTHORIZED = 401
    FORBIDDEN = 403
    NOT_FOUND = 404
    PROXY_AUTHENTICATION_REQUIRED = 407
    REQUEST_TIMEOUT = 408
    TEMPORARILY_UNAVAILABLE = 480
    ADDRESS_INCOMPLETE = 484
    AMBIGUOUS = 485
    BUSY_HERE = 486
    REQUEST_TERMINATED = 487
    SERVER_INTERNAL_ERROR = 500
    BAD_GATEWAY = 502
    SERVICE_UNAVAILABLE = 503
    SERVER_TIMEOUT = 504
    BUSY_EVERYWHERE = 600
    DECLINE = 603
    DOES_NOT_EXIST_ANYWHERE = 604


FORMAT_FAILURES = frozenset(
    {SipStatus.NOT_FOUND, SipStatus.ADDRESS_INCOMPLETE, SipStatus.AMBIGUOUS, SipStatus.DOES_NOT_EXIST_ANYWHERE}
)
AUTH_FAILURES = frozenset({SipStatus.UNAUTHORIZED, SipStatus.PROXY_AUTHENTICATION_REQUIRED, SipStatus.FORBIDDEN})
TRANSIENT_FAILURES = frozenset(
    {SipStatus.SERVER_INTERNAL_ERROR, SipStatus.BAD_GATEWAY, SipStatus.SERVICE_UNAVAILABLE, SipStatus.SERVER_TIMEOUT}
)
BUSY = frozenset({SipStatus.BUSY_HERE, SipStatus.BUSY_EVERYWHERE})

# Outcomes of a call somebody answered (the answer-rate numerator).
ANSWERED_OUTCOMES = frozenset(
    {Outcome.ANSWERED, Outcome.TRANSFERRED, Outcome.TRANSFER_FAILED, Outcome.OPTED_OUT, Outcome.MESSAGE_PLAYED,
     Outcome.ABANDONED, Outcome.AGENT_UNAVAILABLE}
)
# Outcomes that are rescheduled by the campaign's retry policy while attempts remain.
RETRYABLE_OUTCOMES = frozenset({Outcome.BUSY, Outcome.NO_ANSWER, Outcome.TRANSIENT, Outcome.WORKER_LOST,
                                Outcome.MACHINE})
# Calls a machine answered. Neither counts as a person reached (answer rate, abandon rate). ``machine``
# (no message left) is tried again later, like no_answer but after longer (2 h by default: another time
# of day finds the person, not the box); ``voicemail_left`` is final, since a second message on the same
# box annoys more than it sells and the customer now has the number to call back.
MACHINE_OUTCOMES = frozenset({Outcome.MACHINE, Outcome.VOICEMAIL_LEFT})


@dataclass(frozen=True, slots=True)
class Classification:
    outcome: Outcome
    action: Action


_ANSWERED = Classification(Outcome.ANSWERED, Action.COMPLETE)
_TRANSIENT = Classification(Outcome.TRANSIENT, Action.BACKOFF)
_NO_ANSWER = Classification(Outcome.NO_ANSWER, Action.RETRY_LATER)
_FAILED = Classification(Outcome.FAILED, Action.COMPLETE)
_BY_CODE: dict[int, Classification] = {
    **{code: Classification(Outcome.BUSY, Action.RETRY_LATER) for code in BUSY},
    **{code: Classification(Outcome.AUTH_FAILED, Action.REREGISTER) for code in AUTH_FAILURES},
    **{code: _TRANSIENT for code in TRANSIENT_FAILURES},
    SipStatus.TEMPORARILY_UNAVAILABLE: _NO_ANSWER,
    SipStatus.DECLINE: Classification(Outcome.REJECTED, Action.COMPLETE),
}


def classify(
    status: int | None, *, rang: bool = False, ring_timeout_fired: bool = False
) -> Classification:
    """Classify one INVITE's final state.

    ``status`` is the final response code, or None when none came (transport
    error, timeout). ``rang`` is whether any 18x arrived first;
    ``ring_timeout_fired`` whether we cancelled it because nobody answered.
    """
    if status is None or status < 200:
        return _TRANSIENT
    if status < 300:
        return _ANSWERED
    if status == SipStatus.REQUEST_TERMINATED:
        return _NO_ANSWER if ring_timeout_fired else _TRANSIENT
    if status == SipStatus.REQUEST_TIMEOUT:
        return _NO_ANSWER if rang else _TRANSIENT
    if status in FORMAT_FAILURES:
        return _FAILED if rang else Classification(Outcome.NOT_FOUND, Action.NEXT_VARIANT)
    return _BY_CODE.get(status, _FAILED)
