"""The registration gate: stop consuming on an auth failure, resume once a REGISTER succeeds."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from worker import gate as gate_module
from worker.gate import RegistrationGate
from worker.sip import RegistrationResult

OK = RegistrationResult(200, "OK", True, 300, datetime(2026, 11, 25, tzinfo=UTC))
REFUSED = RegistrationResult(403, "Forbidden", False, 0, datetime(2026, 11, 25, tzinfo=UTC))


@pytest.fixture(autouse=True)
def _fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gate_module, "RETRY_MIN_S", 0.01)
    monkeypatch.setattr(gate_module, "RETRY_MAX_S", 0.08)
    monkeypatch.setattr(gate_module, "AUTH_RETRY_MIN_S", 0.01)
    monkeypatch.setattr(gate_module, "AUTH_RETRY_MAX_S", 0.08)
    monkeypatch.setattr(gate_module, "REPEAT_CONTROL_S", ())


def make(results: list[RegistrationResult]) -> tuple[RegistrationGate, list[str], threading.Event]:
    events: list[str] = []
    resumed = threading.Event()

    def resume() -> None:
        events.append("resume")
        resumed.set()

    gate = RegistrationGate(lambda: results.pop(0), stop_consuming=lambda: events.append("stop"),
                            resume_consuming=resume)
    return gate, events, resumed


def test_closing_stops_consuming_once_and_reopens_after_a_good_register() -> None:
    gate, events, resumed = make([REFUSED, REFUSED, OK])
    gate.close("403 on INVITE")
    gate.close("another 403 while closed")
    assert not gate.is_open
    assert resumed.wait(5)
    assert events == ["stop", "resume"]
    assert gate.is_open
    gate.shutdown()


def test_a_gate_that_closes_again_soon_waits_longer_before_reopening() -> None:
    """REGISTER works but INVITEs are refused: each cycle waits longer, so fewer leads are burnt."""
    gate, _events, resumed = make([OK, OK])
    gate.close("first")
    assert resumed.wait(5)
    first_delay = gate._delay
    resumed.clear()
    gate.close("again, right after reopening")
    assert resumed.wait(5)
    assert gate._delay > first_delay
    gate.shutdown()


TIMEOUT = RegistrationResult(408, "Request Timeout", False, 0, datetime(2026, 11, 25, tzinfo=UTC))


def wait_for(events: list[str], count: int) -> None:
    """Until ``events`` holds ``count`` entries (the gate acts on its own thread)."""
    done = threading.Event()
    for _ in range(500):
        if len(events) >= count:
            done.set()
            break
        done.wait(0.01)
    assert len(events) >= count, events


def test_a_failed_refresh_stops_consuming_and_the_next_200_resumes_without_a_gate_retry() -> None:
    """Registrar gone (408 on refresh): stop once; the SIP agent retries ordinary failures, so the gate does
    not re-register by itself; the 200 it reports later resumes consuming."""
    calls: list[str] = []
    gate, events, resumed = make([])
    gate._reregister = lambda: (calls.append("register"), OK)[1]  # type: ignore[method-assign]
    gate.registration_result(TIMEOUT)
    gate.registration_result(TIMEOUT)
    wait_for(events, 1)
    assert events == ["stop"] and not gate.is_open and gate.closed_for == "registration"
    gate.registration_result(OK)
    assert resumed.wait(5)
    assert events == ["stop", "resume"] and gate.is_open
    assert calls == []
    gate.shutdown()


def test_a_403_on_refresh_stops_consuming_and_the_gate_retries_register_with_backoff() -> None:
    """401/403 is not retried by the SIP agent (it may be a wrong password): the gate re-registers, slower."""
    gate, events, resumed = make([REFUSED, OK])
    gate.registration_result(REFUSED)
    assert resumed.wait(5)
    assert events == ["stop", "resume"]
    gate.shutdown()


def test_a_refresh_200_does_not_cut_an_invite_auth_pause_short(monkeypatch: pytest.MonkeyPatch) -> None:
    """REGISTER works but INVITEs were refused: only the gate's own delayed re-register reopens it."""
    monkeypatch.setattr(gate_module, "RETRY_MIN_S", 0.5)
    gate, events, resumed = make([OK])
    gate.close("403 on INVITE")
    gate.registration_result(OK)  # the usual refresh, arriving during the pause
    assert not resumed.wait(0.2)
    assert not gate.is_open
    assert resumed.wait(5)
    assert events == ["stop", "resume"]
    gate.shutdown()


def test_every_failure_says_what_to_check() -> None:
    assert "DIALER_SIP_PASSWORD" in gate_module.what_to_check(RegistrationResult(
        401, "Unauthorized", False, 0, datetime(2026, 11, 25, tzinfo=UTC)))
    assert "rights" in gate_module.what_to_check(REFUSED)
    assert "DIALER_SIP_REGISTRAR" in gate_module.what_to_check(TIMEOUT)


def test_the_stop_or_resume_broadcast_is_repeated_in_case_one_was_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    """Celery's remote control is fire-and-forget: the gate says it again shortly after (idempotent)."""
    monkeypatch.setattr(gate_module, "REPEAT_CONTROL_S", (0.05, 0.1))
    gate, events, _ = make([])
    gate.registration_result(TIMEOUT)
    wait_for(events, 3)
    assert events == ["stop", "stop", "stop"]
    gate.shutdown()
