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
No try starts when the job's lease could run out before the ring timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
from worker.sip.errors import CertificateRejected

TRANSIENT_TRIES = 3
TRANSIENT_BUDGET_S = 8.0
# Time a try needs beyond its ring timeout: call set-up before ringing, BYE/CANCEL after.
SETUP_MARGIN_S = 10.0


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

    @property
    def auth_failed(self) -> bool:
        return self.outcome is Outcome.AUTH_FAILED


def classify_result(result: CallResult) -> Classification:
    """A locally generated code (``error`` set: nothing answered) counts as no response at all."""
    status = None if result.error else result.status
    return classify(status, rang=result.rang, ring_timeout_fired=result.ring_timeout_fired)


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
    script_factory: ScriptFactory | None = None,
) -> AttemptReport:
    """Dial ``variants`` in order until one gives a non-format outcome; report every try.

    ``deadline`` is a ``clock()`` instant (the job's time budget, less a margin)
    after which no new INVITE starts and no call may still be live.
    ``hold_s`` is the longest an answered call lasts: the hold, or with a
    ``script_factory`` (a flow run on answer) the flow's maximum duration.
    """
    report = AttemptReport()
    position = 0
    while position < len(variants):
        variant = variants[position]
        try:
            tries = _try_variant(placer, variant, report, ring_timeout_s, hold_s, deadline, on_try, clock, sleep,
                                 script_factory)
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
    script_factory: ScriptFactory | None = None,
) -> int | None:
    """Place one variant, retrying transient failures; None when the lease has no room left."""
    uri = placer.uri_for(variant.digits)
    needed = ring_timeout_s + hold_s + SETUP_MARGIN_S

    def one_call() -> Try | None:
        remaining = None if deadline is None else deadline - clock()
        if remaining is not None and remaining < needed:
            return None
        # Only a flow call names its script, so placers written before flows keep working.
        flow: dict[str, ScriptFactory] = {"script_factory": script_factory} if script_factory is not None else {}
        result = placer.call(uri, ring_timeout_s=ring_timeout_s, hold_s=hold_s, timeout_s=remaining, **flow)
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
