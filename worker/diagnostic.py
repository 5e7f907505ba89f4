"""``dialer call``: one call through a trunk's variants, shown as a SIP ladder.

The same code path as a real dial (worker.dialing.dial_number), minus Postgres
and Redis, so what an operator sees here is what a campaign would do::

    REGISTER sip:127.0.0.1:5060 -> 401 -> 200 OK
    INVITE sip:13900001111@127.0.0.1:5060 [national] -> 407 -> 404 Not Found => not_found
    INVITE sip:8613900001111@127.0.0.1:5060 [cc] -> 407 -> 404 Not Found => not_found
    INVITE sip:+8613900001111@127.0.0.1:5060 [e164] -> 407 -> 100 180 200 OK => answered
    outcome: answered

Each ``->`` step is a response pjsua handled: first the digest challenges it
answered with credentials (the agent's ``challenges``), then the provisional
responses and the final one. ``--json`` carries the same facts. Neither ever
holds the password or a digest header: only codes and reason phrases.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from shared.numbers import DialVariant
from shared.settings import Trunk
from worker.diagnostic_flow import DiagnosticFlow, flow_lines
from worker.dialing import Try, dial_number
from worker.runtime import account_for
from worker.sip import CallResult, RegistrationResult, SipAgent
from worker.sip.errors import CertificateRejected


def registration_record(registrar: str, result: RegistrationResult | None) -> dict[str, Any]:
    """The REGISTER step as JSON-ready data (``registrar`` is the URI, never credentials)."""
    if result is None:
        return {"registrar": registrar, "status": None, "reason": "registration disabled", "registered": False,
                "challenges": []}
    return {"registrar": registrar, "status": result.status, "reason": result.reason,
            "registered": result.registered, "challenges": list(result.challenges), "expires_s": result.expires_s}


def registration_line(registrar: str, result: RegistrationResult | None) -> str:
    """``REGISTER sip:host:port -> 401 -> 200 OK``."""
    if result is None:
        return f"REGISTER {registrar} -> skipped (registration disabled)"
    final = f"{result.status} {result.reason}".strip()
    return " -> ".join([f"REGISTER {registrar}", *(str(code) for code in result.challenges), final])


def try_record(done: Try) -> dict[str, Any]:
    """One INVITE as JSON-ready data."""
    r = done.result
    return {
        "variant": done.variant.kind.value, "digits": done.variant.digits, "uri": r.uri, "call_id": r.call_id,
        "challenges": list(r.challenges), "provisional": [code for code, _ in r.provisional],
        "status": r.status, "reason": r.reason, "error": r.error, "outcome": done.outcome.value,
        "ring_timeout_fired": r.ring_timeout_fired, "setup_s": r.setup_s,
        "talk_s": r.talk_s if r.answered else None, "hangup_by": r.hangup_by,
    }


def _final_step(r: CallResult) -> str:
    """``100 180 200 OK``: the provisional codes, then the final response (and what went wrong)."""
    final = " ".join([*(str(code) for code, _ in r.provisional), f"{r.status} {r.reason}".strip()])
    return f"{final} ({r.error})" if r.error else final


def try_line(done: Try) -> str:
    """``INVITE sip:... [e164] -> 407 -> 100 180 200 OK => answered``."""
    r = done.result
    steps = [f"INVITE {r.uri} [{done.variant.kind.value}]", *(str(code) for code in r.challenges), _final_step(r)]
    return f"{' -> '.join(steps)} => {done.outcome.value}"


def run_diagnostic_call(
    trunk: Trunk,
    variants: Sequence[DialVariant],
    *,
    ring_timeout_s: float,
    hold_s: float,
    echo: Callable[[str], None] | None = None,
    flow: DiagnosticFlow | None = None,
) -> dict[str, Any]:
    """Register, dial, hang up; return the ladder as a dict (and print it line by line if ``echo``).

    With a ``flow``, an answered call runs it instead of the hold; the flow's
    steps follow the ladder, and the outcome is the flow's business outcome.
    """
    say = echo or (lambda _line: None)
    account = account_for(trunk)
    registrar = account.registrar_uri()
    agent = SipAgent(account)
    try:
        registration = agent.start()
        reg = registration_record(registrar, registration)
        say(registration_line(registrar, registration))
        if registration is not None and not registration.registered:
            if registration.certificate_rejected:  # a configuration error: one line, exit 2
                raise CertificateRejected(registration.reason)
            if registration.auth_rejected:
                say("outcome: auth_failed (the trunk refused our credentials: check username, password, realm)")
                return {"registration": reg, "attempts": [], "outcome": "auth_failed"}
            say(f"outcome: transient (registration failed: {registration.status} {registration.reason})")
            return {"registration": reg, "attempts": [], "outcome": "transient"}

        def show(done: Try) -> None:
            say(try_line(done))

        report = dial_number(agent, variants, ring_timeout_s=ring_timeout_s,
                             hold_s=flow.flow.max_duration_s if flow is not None else hold_s, on_try=show,
                             script_factory=flow.factory if flow is not None else None)
        if report.config_error:  # a trunk without REGISTER meets the certificate problem on its first INVITE
            raise CertificateRejected(report.config_error)
        outcome = report.outcome.value
        record: dict[str, Any] = {"registration": reg, "attempts": [try_record(t) for t in report.tries]}
        if flow is not None:
            ran: Mapping[str, Any] | None = next(
                (t.result.flow for t in report.tries if t.result.flow is not None), None)
            steps = (ran or {}).get("steps")
            record["flow"] = list(steps) if isinstance(steps, list) else []
            if ran is not None:
                for line in flow_lines(ran):
                    say(line)
                outcome = str(ran.get("outcome") or outcome)
                record["first_audio_s"] = ran.get("first_audio_s")
                if ran.get("error"):
                    record["flow_error"] = ran["error"]
        say(f"outcome: {outcome}")
        return {**record, "outcome": outcome}
    finally:
        agent.stop(grace_s=2)
