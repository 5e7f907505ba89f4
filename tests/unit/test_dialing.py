"""The attempt loop of worker.dialing, against a scripted placer (the SIP agent's shape, no SIP)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest

from shared.errors import CapacityExceeded
from shared.numbers import dial_variants
from shared.outcomes import Outcome
from worker.dialing import dial_number
from worker.sip import CallResult, RegistrationResult
from worker.sip.commands import CallRequest
from worker.sip.errors import CallTimedOut

T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
VARIANTS = dial_variants("139 0000 1111", "CN")


def result(
    uri: str, status: int, *, rang: bool = False, timed_out: bool = False, error: str | None = None
) -> CallResult:
    provisional = ((100, T0), (180, T0 + timedelta(seconds=1))) if rang else ((100, T0),)
    answered = 200 <= status < 300
    return CallResult(
        uri=uri, call_id=f"call-{uri}", provisional=provisional, status=status, reason="x", invite_at=T0,
        first_provisional_at=T0, answer_at=T0 + timedelta(seconds=2) if answered else None,
        end_at=T0 + timedelta(seconds=3), hangup_by="local", ring_timeout_fired=timed_out, error=error,
    )


class ScriptedPlacer:
    """Answers each INVITE with the next scripted (user part -> status) rule."""

    def __init__(self, script: Iterable[object]) -> None:
        self.script = list(script)
        self.dialled: list[str] = []
        self.reregistered = 0

    def uri_for(self, user_part: str) -> str:
        return f"sip:{user_part}@127.0.0.1"

    def call(self, uri: str, *, ring_timeout_s: float, hold_s: float, timeout_s: float | None = None) -> CallResult:
        self.dialled.append(uri)
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        assert isinstance(step, dict)
        return result(uri, **step)

    def reregister(self, timeout_s: float = 10) -> RegistrationResult:
        self.reregistered += 1
        return RegistrationResult(200, "OK", True, 300, T0)


def run(placer: ScriptedPlacer, **kw: object) -> object:
    return dial_number(placer, VARIANTS, ring_timeout_s=45, hold_s=0, sleep=lambda _s: None, **kw)  # type: ignore[arg-type]


def test_national_and_cc_404_then_plus86_answers() -> None:
    """The first attempt's failure: 404 on the national form must move on to 86 and +86."""
    placer = ScriptedPlacer([{"status": 404}, {"status": 404}, {"status": 200}])
    report = run(placer)
    assert placer.dialled == [
        "sip:13900001111@127.0.0.1", "sip:8613900001111@127.0.0.1", "sip:+8613900001111@127.0.0.1"]
    assert report.outcome is Outcome.ANSWERED
    assert [t.outcome for t in report.tries] == [Outcome.NOT_FOUND, Outcome.NOT_FOUND, Outcome.ANSWERED]
    assert report.accepted_variant.value == "e164"


def test_all_variants_404_is_invalid_number() -> None:
    report = run(ScriptedPlacer([{"status": 404}, {"status": 484}, {"status": 604}]))
    assert report.outcome is Outcome.INVALID_NUMBER
    assert len(report.tries) == 3
    assert report.accepted_variant is None


def test_404_after_ringing_does_not_try_another_variant() -> None:
    """The number was routed and rang: dialling +86 now would ring the same person again."""
    placer = ScriptedPlacer([{"status": 404, "rang": True}])
    report = run(placer)
    assert len(placer.dialled) == 1
    assert report.outcome is Outcome.FAILED


def test_auth_failure_reregisters_once_and_retries_same_variant() -> None:
    placer = ScriptedPlacer([{"status": 407}, {"status": 200}])
    report = run(placer)
    assert placer.reregistered == 1
    assert placer.dialled == ["sip:13900001111@127.0.0.1"] * 2
    assert report.outcome is Outcome.ANSWERED


def test_second_auth_failure_ends_auth_failed() -> None:
    placer = ScriptedPlacer([{"status": 401}, {"status": 403}])
    report = run(placer)
    assert placer.reregistered == 1
    assert report.outcome is Outcome.AUTH_FAILED
    assert report.auth_failed


def test_transient_503_then_success_in_same_attempt() -> None:
    placer = ScriptedPlacer([{"status": 503}, {"status": 200}])
    report = run(placer)
    assert [t.result.status for t in report.tries] == [503, 200]
    assert report.outcome is Outcome.ANSWERED


def test_persistent_503_is_bounded_and_ends_transient() -> None:
    placer = ScriptedPlacer([{"status": 503}] * 10)
    report = run(placer)
    assert len(placer.dialled) == 3
    assert report.outcome is Outcome.TRANSIENT


def test_no_response_counts_as_transient_even_with_a_local_code() -> None:
    placer = ScriptedPlacer([{"status": 408, "error": "timeout"}] * 3)
    assert run(placer).outcome is Outcome.TRANSIENT


@pytest.mark.parametrize(
    ("status", "outcome"), [(486, Outcome.BUSY), (603, Outcome.REJECTED), (480, Outcome.NO_ANSWER)]
)
def test_business_outcomes_end_the_attempt_at_once(status: int, outcome: Outcome) -> None:
    placer = ScriptedPlacer([{"status": status}])
    assert run(placer).outcome is outcome
    assert len(placer.dialled) == 1


def test_ring_timeout_is_no_answer() -> None:
    report = run(ScriptedPlacer([{"status": 487, "rang": True, "timed_out": True}]))
    assert report.outcome is Outcome.NO_ANSWER


def test_refusal_by_agent_ends_transient_without_a_try() -> None:
    placer = ScriptedPlacer([CapacityExceeded("full")] * 3)
    report = run(placer)
    assert report.tries == []
    assert report.outcome is Outcome.TRANSIENT
    assert report.refused == "full"


def test_no_invite_when_the_lease_has_no_room() -> None:
    """A try needs ring timeout + hold + set-up before the lease ends; otherwise none starts."""
    placer = ScriptedPlacer([{"status": 200}])
    report = run(placer, deadline=20.0, clock=lambda: 0.0)
    assert placer.dialled == []
    assert report.lease_ran_out


def test_every_try_is_reported_as_it_ends() -> None:
    seen: list[int] = []
    run(ScriptedPlacer([{"status": 404}, {"status": 486}]), on_try=lambda t: seen.append(t.result.status))
    assert seen == [404, 486]


# ------------------------------------------------------------------ a placed call whose result came late

def timed_out(uri: str, *, late: CallResult | Exception | None, call_id: str = "late-call") -> CallTimedOut:
    """The agent's CallTimedOut for a call whose INVITE left (Call-ID known); ``late`` resolves its future."""
    request = CallRequest(uri, 45.0, 0.0, 0.0, call_id=call_id, invite_at=T0)
    if isinstance(late, Exception):
        request.future.set_exception(late)
    elif late is not None:
        request.future.set_result(late)
    return CallTimedOut("no call result within 1 s; the call was aborted", request)


class TimingOutPlacer(ScriptedPlacer):
    """Like ScriptedPlacer, but a step may be a callable building the exception from the dialled URI."""

    def call(self, uri: str, *, ring_timeout_s: float, hold_s: float, timeout_s: float | None = None) -> CallResult:
        step = self.script[0]
        if callable(step):
            self.script.pop(0)
            self.dialled.append(uri)
            raise step(uri)
        return super().call(uri, ring_timeout_s=ring_timeout_s, hold_s=hold_s, timeout_s=timeout_s)


def test_a_timed_out_call_still_ending_is_recorded_as_timeout_and_not_dialled_again() -> None:
    """The result never came within the wait: one try (variant, URI, Call-ID, INVITE time, reason timeout),
    no second INVITE in this attempt (tenacity must not retry it like a refusal), attempt transient."""
    placer = TimingOutPlacer([lambda uri: timed_out(uri, late=None), {"status": 200}])
    report = run(placer, abort_wait_s=0.01)
    assert placer.dialled == ["sip:13900001111@127.0.0.1"]
    [only] = report.tries
    assert (only.variant.kind.value, only.result.uri, only.result.call_id, only.result.invite_at) == (
        "national", "sip:13900001111@127.0.0.1", "late-call", T0)
    assert only.result.reason == "timeout" and only.result.error and only.outcome is Outcome.TRANSIENT
    assert report.outcome is Outcome.TRANSIENT and report.timed_out and report.refused is None


def test_a_timed_out_call_whose_late_result_arrives_keeps_that_result() -> None:
    """The aborted call ended within the wait and had been answered: recorded answered, nobody called twice."""
    late = result("sip:13900001111@127.0.0.1", 200)
    placer = TimingOutPlacer([lambda uri: timed_out(uri, late=late), {"status": 200}])
    report = run(placer, abort_wait_s=1.0)
    assert placer.dialled == ["sip:13900001111@127.0.0.1"]
    assert [t.outcome for t in report.tries] == [Outcome.ANSWERED]
    assert report.outcome is Outcome.ANSWERED and report.timed_out


def test_a_late_format_failure_still_ends_the_attempt_transient() -> None:
    """A late 404 does not move on to the next variant in this attempt: the attempt ends, retried later."""
    late = result("sip:13900001111@127.0.0.1", 404)
    placer = TimingOutPlacer([lambda uri: timed_out(uri, late=late), {"status": 200}])
    report = run(placer, abort_wait_s=1.0)
    assert len(placer.dialled) == 1
    assert [t.outcome for t in report.tries] == [Outcome.NOT_FOUND]
    assert report.outcome is Outcome.TRANSIENT


def test_a_timed_out_call_that_never_started_is_a_refusal_retried_like_one() -> None:
    """Aborted while it waited for a slot (no INVITE left): no try row, the same variant again."""
    never = CapacityExceeded("call aborted before it started")
    placer = TimingOutPlacer([lambda uri: timed_out(uri, late=never), {"status": 200}])
    report = run(placer, abort_wait_s=1.0)
    assert placer.dialled == ["sip:13900001111@127.0.0.1"] * 2
    assert report.outcome is Outcome.ANSWERED and not report.timed_out
    assert len(report.tries) == 1
