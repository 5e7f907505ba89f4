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
