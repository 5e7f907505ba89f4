"""``dialer call``: one call through a trunk's variants, shown as a SIP ladder.

The same code path as a real dial (worker.dialing.dial_number), minus Postgres
and Redis, so what an operator sees here is what a campaign would do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from shared.numbers import DialVariant
from shared.settings import Trunk
from worker.dialing import Try, dial_number
from worker.runtime import account_for
from worker.sip import RegistrationResult, SipAgent


def _registration(result: RegistrationResult | None) -> dict[str, Any]:
    if result is None:
        return {"status": None, "reason": "registration disabled", "registered": False}
    return {"status": result.status, "reason": result.reason, "registered": result.registered,
            "expires_s": result.expires_s}


def try_record(done: Try) -> dict[str, Any]:
    r = done.result
    return {
        "variant": done.variant.kind.value, "digits": done.variant.digits, "uri": r.uri, "call_id": r.call_id,
        "provisional": [code for code, _ in r.provisional], "status": r.status, "reason": r.reason,
        "error": r.error, "outcome": done.outcome.value, "ring_timeout_fired": r.ring_timeout_fired,
        "setup_s": r.setup_s, "talk_s": r.talk_s if r.answered else None, "hangup_by": r.hangup_by,
    }


def run_diagnostic_call(
    trunk: Trunk,
    variants: Sequence[DialVariant],
    *,
    ring_timeout_s: float,
    hold_s: float,
    echo: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Register, dial, hang up; return the ladder as a dict (and print it line by line if ``echo``)."""
    say = echo or (lambda _line: None)
    agent = SipAgent(account_for(trunk))
    try:
        registration = agent.start()
        reg = _registration(registration)
        say(f"REGISTER {trunk.registrar} ({trunk.transport}) -> {reg['status']} {reg['reason']}")
        if registration is not None and not registration.registered:
            say("outcome: auth_failed (the trunk refused our credentials: check username, password, realm)"
                if registration.auth_rejected else f"outcome: registration failed ({reg['reason']})")
            return {"registration": reg, "attempts": [], "outcome": "auth_failed"
                    if registration.auth_rejected else "transient"}

        def show(done: Try) -> None:
            r = done.result
            ladder = " ".join(str(code) for code, _ in r.provisional)
            say(f"INVITE {r.uri} [{done.variant.kind.value}] -> {ladder + ' ' if ladder else ''}"
                f"{r.status} {r.reason}{' (' + r.error + ')' if r.error else ''} => {done.outcome.value}")

        report = dial_number(agent, variants, ring_timeout_s=ring_timeout_s, hold_s=hold_s, on_try=show)
        say(f"outcome: {report.outcome.value}")
        return {"registration": reg, "attempts": [try_record(t) for t in report.tries],
                "outcome": report.outcome.value}
    finally:
        agent.stop(grace_s=2)
