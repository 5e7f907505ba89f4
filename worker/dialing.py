"""One attempt at reaching a number: the variant loop, the auth retry, the transient backoff.

Decisions come from pure functions in ``shared`` (``classify``, ``dial_variants``);
this module applies them to a :class:`CallPlacer` (the SIP agent, or anything
with its shape) and reports every try, because every INVITE that left the
process is a CDR row, whether it was answered or not.

Per attempt, in order:
- number format: a 404/484/485/604 before any 18x moves to the trunk's next
  variant at once; when none is left the attempt ends ``invalid_number``;
- auth: a 401/407/403 that reaches us re-registers once and retries the same
  variant once; a second one ends the attempt ``auth_failed``;
- transient (5xx, 408 before ringing, no response): the same variant again with
  bounded exponential backoff and jitter (tenacity), a few seconds in all;
  after that the attempt ends ``transient`` and the job is rescheduled;
- anything else ends the attempt with its own outcome.
A refusal by the agent (no free call slot, agent stopping: no INVITE left) is
retried like a transient failure and, when it persists, ends the attempt
``transient`` with no try recorded. A trunk certificate that fails TLS
verification ends it at once, with no try and ``config_error`` set.
A call whose result did not come in time (``CallTimedOut``: the agent aborted
it) is not a refusal: its INVITE may have left. The try waits, bounded, for
the aborted call to be over (its end, or the abort's CANCEL/BYE), records
what is known (the late result, or the variant, URI, Call-ID and INVITE time
with reason ``timeout``) and ends the attempt: no further INVITE in it, so the
same person is never called twice at once. The attempt is ``transient`` unless
the late result settles it (answered, busy, ...).
No try starts when the job's lease could run out before the ring timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from shared.errors import RetryableError
from shared.numbers import DialVariant, VariantKind
from shared.outcomes import Action, Classification, Outcome, classify
from worker.sip import CallResult, RegistrationResult
from worker.sip.agent import ScriptFactory
from worker.sip.errors import CallTimedOut, CertificateRejected

TRANSIENT_TRIES = 3
TRANSIENT_BUDGET_S = 8.0
# Time a try needs beyond its ring timeout: call set-up before ringing, BYE/CANCEL after.
SETUP_MARGIN_S = 10.0
# How long a timed-out call gets to be over: the abort's CANCEL/BYE ends within SIP timer B/F (32 s).
# Below the reaper's default lease grace (60 s), so the reaper never takes a job whose call may still end.
ABORT_WAIT_S = 35.0
_SETTLING = (Action.COMPLETE, Action.RETRY_LATER)


class CallPlacer(Protocol):
    def call(self, uri: str, *, ring_timeout_s: float, hold_s: float, timeout_s: float | None = None,
             script_factory: ScriptFactory | None = None) -> CallResult: ...

    def reregister(self, timeout_s: float = 10) -> RegistrationResult: ...

    def uri_for(self, user_part: str) -> str: ...


@dataclass(frozen=True, slots=True)
class Try:
    """One INVITE: which variant, what came back, what it meant."""

    index: int
    variant: DialVariant
    result: CallResult
    classification: Classification

    @property
    def outcome(self) -> Outcome:
        return self.classification.outcome


@dataclass(slots=True)
class AttemptReport:
    tries: list[Try] = field(default_factory=list)
    outcome: Outcome = Outcome.TRANSIENT
    accepted_variant: VariantKind | None = None
    reregistered: bool = False
    lease_ran_out: bool = False
    refused: str | None = None  # why the agent refused to place a call, when it did
    config_error: str | None = None  # the trunk cannot be used as configured (its certificate is not trusted)
    timed_out: bool = False  # a placed call's result came late: the attempt stopped after recording it

    @property
    def auth_failed(self) -> bool:
        return self.outcome is Outcome.AUTH_FAILED


def classify_result(result: CallResult) -> Classification:
    """A locally generated code (``error`` set: nothing answered) counts as no response at all."""
    status = None if result.error else result.status
    found = classify(status, rang=result.rang, ring_timeout_fired=result.ring_timeout_fired)
    early = (result.early_media or {}).get("early_media")
    if early == "announcement" and result.answer_at is None and found.action in (Action.RETRY_LATER, Action.BACKOFF):
        # A carrier's "cannot be reached" before a no-answer or a timeout: a machine, not a person who did not
        # pick up (worker/sip/early_media.py); a final refusal (404, 603) keeps its own outcome.
        return Classification(Outcome.MACHINE, Action.RETRY_LATER)
    return found


class _PlacedCallTimedOut(Exception):
    """A placed call timed out; its try is recorded and the attempt places no further INVITE."""

    def __init__(self, done: Try) -> None:
        super().__init__(done.result.reason)
        self.done = done


def settle_timed_out(exc: CallTimedOut, *, started_at: datetime, wait_s: float) -> CallResult:
    """What is known of an aborted call once it is over, or when ``wait_s`` ran out first.

    Re-raises the agent's refusal when the call never started (no INVITE left).
    """
    request = exc.request
    if request is not None:
        try:
            return request.future.result(timeout=wait_s)  # the late result: the call is over
        except FutureTimeout:
            pass
        # any other exception: the call was dropped before its INVITE; the caller treats it as a refusal
    now = datetime.now(UTC)
    return CallResult(
        uri=request.uri if request is not None else "", call_id=request.call_id if request is not None else "",
        provisional=(), status=0, reason="timeout",
        invite_at=(request.invite_at if request is not None else None) or started_at,
        first_provisional_at=None, answer_at=None, end_at=now, hangup_by="local", ring_timeout_fired=False,
        error=f"timeout: {exc}; its end not seen within {wait_s:g} s",
    )


def dial_number(
    placer: CallPlacer,
    variants: Sequence[DialVariant],
    *,
    ring_timeout_s: float,
    hold_s: float,
    deadline: float | None = None,
    on_try: Callable[[Try], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    abort_wait_s: float | None = None,
    script_factory: ScriptFactory | None = None,
) -> AttemptReport:
    """Dial ``variants`` in order until one gives a non-format outcome; report every try.

    ``deadline`` is a ``clock()`` instant (the job's time budget, less a margin)
    after which no new INVITE starts and no call may still be live.
    ``hold_s`` is the longest an answered call lasts: the hold, or with a
    ``script_factory`` (a flow run on answer) the flow's maximum duration.
    ``abort_wait_s`` bounds the wait for a timed-out call to be over.
    """
    report = AttemptReport()
    if abort_wait_s is None:
        abort_wait_s = ABORT_WAIT_S
    position = 0
    while position < len(variants):
        variant = variants[position]
        try:
            tries = _try_variant(placer, variant, report, ring_timeout_s, hold_s, deadline, on_try, clock, sleep,
                                 abort_wait_s, script_factory)
        except _PlacedCallTimedOut as lost:
            report.timed_out = True
            settled = lost.done.classification.action in _SETTLING
            report.outcome = lost.done.outcome if settled else Outcome.TRANSIENT
            if settled:
                report.accepted_variant = variant.kind
            return report
        except RetryableError as exc:  # refused before any INVITE left (capacity, agent stopping)
            report.outcome = Outcome.TRANSIENT
            report.refused = str(exc)
            return report
        except CertificateRejected as exc:  # no INVITE reached the trunk: not an outcome of this number
            report.outcome = Outcome.TRANSIENT
            report.refused = report.config_error = str(exc)
            return report
        if tries is None:
            report.lease_ran_out = True
            report.outcome = Outcome.TRANSIENT
            return report
        last = report.tries[-1]
        action = last.classification.action
        if action is Action.REREGISTER and not report.reregistered:
            report.reregistered = True
            placer.reregister()
            continue  # the same variant, once
        if action is Action.NEXT_VARIANT:
            position += 1
            report.outcome = Outcome.INVALID_NUMBER
            continue
        report.outcome = last.outcome
        if last.outcome not in (Outcome.AUTH_FAILED, Outcome.TRANSIENT):
            report.accepted_variant = variant.kind
        return report
    return report


def _try_variant(
    placer: CallPlacer,
    variant: DialVariant,
    report: AttemptReport,
    ring_timeout_s: float,
    hold_s: float,
    deadline: float | None,
    on_try: Callable[[Try], None] | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    abort_wait_s: float,
    script_factory: ScriptFactory | None = None,
) -> int | None:
    """Place one variant, retrying transient failures; None when the lease has no room left."""
    uri = placer.uri_for(variant.digits)
    needed = ring_timeout_s + hold_s + SETUP_MARGIN_S

    def one_call() -> Try | None:
        remaining = None if deadline is None else deadline - clock()
        if remaining is not None and remaining < needed:
            return None
        started_at = datetime.now(UTC)
        # Only a flow call names its script, so placers written before flows keep working.
        flow: dict[str, ScriptFactory] = {"script_factory": script_factory} if script_factory is not None else {}
        try:
            result = placer.call(uri, ring_timeout_s=ring_timeout_s, hold_s=hold_s, timeout_s=remaining, **flow)
        except CallTimedOut as exc:
            late = settle_timed_out(exc, started_at=started_at, wait_s=abort_wait_s)  # or the refusal
            raise _PlacedCallTimedOut(record(late)) from None
        return record(result)

    def record(result: CallResult) -> Try:
        done = Try(len(report.tries), variant, result, classify_result(result))
        report.tries.append(done)
        if on_try is not None:
            on_try(done)
        return done

    def is_transient(found: Try | None) -> bool:
        return found is not None and found.classification.action is Action.BACKOFF

    def give_up(state: RetryCallState) -> Try | None:
        assert state.outcome is not None
        found: Try | None = state.outcome.result()  # re-raises a refusal that outlived the retries
        return found

    retrying = Retrying(
        retry=retry_if_result(is_transient) | retry_if_exception_type(RetryableError),
        stop=stop_after_attempt(TRANSIENT_TRIES) | stop_after_delay(TRANSIENT_BUDGET_S),
        wait=wait_exponential_jitter(multiplier=0.5, max=3.0, jitter=0.5),
        retry_error_callback=give_up,
        sleep=sleep,
    )
    found = retrying(one_call)
    return None if found is None else found.index
