"""Routing decision: which final behaviour an authenticated INVITE gets.

A pure function of the Request-URI user part, the plan and how often that
number was called before, so the whole number plan is unit-testable without a
socket. The server only applies the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from fnmatch import fnmatchcase

from sandbox.plan import DEFAULT_HANGUP_AFTER_S, Action, Plan, Treatment


class Outcome(Enum):
    """What the PBX will do; failures carry their SIP status code and reason phrase."""

    ANSWER = (200, "OK")
    RING = (180, "Ringing")
    BUSY = (486, "Busy Here")
    UNAVAILABLE = (503, "Service Unavailable")
    REJECT = (603, "Decline")
    NOT_FOUND = (404, "Not Found")

    @property
    def code(self) -> int:
        """The SIP status code this outcome ends in (180 for ring: it never ends by itself)."""
        return self.value[0]

    @property
    def reason(self) -> str:
        """The reason phrase sent with ``code``."""
        return self.value[1]


@dataclass(frozen=True)
class Route:
    """The decision, with the timings that apply and why it was taken (for the log)."""

    outcome: Outcome
    why: str
    hangup_after_s: float = DEFAULT_HANGUP_AFTER_S
    answer_after_s: float = 0.0
    treatment: Treatment | None = None  # what the callee does once answered (keys, REFER)


_SIMPLE = {
    Action.ANSWER: Outcome.ANSWER,
    Action.BUSY: Outcome.BUSY,
    Action.RING: Outcome.RING,
    Action.REJECT: Outcome.REJECT,
    Action.NOT_FOUND: Outcome.NOT_FOUND,
}


def route(number: str, plan: Plan, *, calls_before: int = 0) -> Route:
    """Decide the fate of a call to ``number`` (the Request-URI user part, unescaped).

    ``calls_before`` counts earlier routed INVITEs to the same number; it is what
    makes ``unavailable_once`` answer on the second try.
    """
    extension = any(rule.match == number for rule in plan.rules)  # e.g. an agent queue named in the plan
    if plan.require_plus_prefix and not number.startswith("+") and not extension:
        return Route(Outcome.NOT_FOUND, "no + prefix")
    treatment, why = plan.default, "default"
    for rule in plan.rules:
        if rule.match == number or fnmatchcase(number, rule.match):
            treatment, why = rule.treatment, f"rule {rule.match}"
            break
    if treatment.action is Action.UNAVAILABLE_ONCE:
        outcome = Outcome.UNAVAILABLE if calls_before == 0 else Outcome.ANSWER
    else:
        outcome = _SIMPLE[treatment.action]
    return Route(outcome, why, treatment.hangup_after_s, treatment.answer_after_s, treatment)
