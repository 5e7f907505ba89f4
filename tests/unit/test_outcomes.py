"""The SIP final response -> outcome/action table of DESIGN.md, pinned code by code."""

from __future__ import annotations

import pytest

from shared.outcomes import Action, Outcome, classify

EXPECTED = {
    200: (Outcome.ANSWERED, Action.COMPLETE),
    202: (Outcome.ANSWERED, Action.COMPLETE),
    486: (Outcome.BUSY, Action.RETRY_LATER),
    600: (Outcome.BUSY, Action.RETRY_LATER),
    480: (Outcome.NO_ANSWER, Action.RETRY_LATER),
    603: (Outcome.REJECTED, Action.COMPLETE),
    404: (Outcome.NOT_FOUND, Action.NEXT_VARIANT),
    484: (Outcome.NOT_FOUND, Action.NEXT_VARIANT),
    485: (Outcome.NOT_FOUND, Action.NEXT_VARIANT),
    604: (Outcome.NOT_FOUND, Action.NEXT_VARIANT),
    401: (Outcome.AUTH_FAILED, Action.REREGISTER),
    403: (Outcome.AUTH_FAILED, Action.REREGISTER),
    407: (Outcome.AUTH_FAILED, Action.REREGISTER),
    500: (Outcome.TRANSIENT, Action.BACKOFF),
    502: (Outcome.TRANSIENT, Action.BACKOFF),
    503: (Outcome.TRANSIENT, Action.BACKOFF),
    504: (Outcome.TRANSIENT, Action.BACKOFF),
    408: (Outcome.TRANSIENT, Action.BACKOFF),
    487: (Outcome.TRANSIENT, Action.BACKOFF),
}


@pytest.mark.parametrize("status", range(400, 700))
def test_every_failure_code_has_the_documented_outcome(status: int) -> None:
    """Each 4xx-6xx before ringing maps to the table; anything unlisted completes as failed, code kept."""
    expected = EXPECTED.get(status, (Outcome.FAILED, Action.COMPLETE))
    result = classify(status, rang=False)
    assert (result.outcome, result.action) == expected


@pytest.mark.parametrize("status", [300, 301, 302, 305, 380])
def test_redirects_complete_as_failed(status: int) -> None:
    """The dialer follows no redirect: a 3xx is a final failure with the code kept."""
    assert classify(status).outcome is Outcome.FAILED
    assert classify(status).action is Action.COMPLETE


@pytest.mark.parametrize("status", [404, 484, 485, 604])
def test_format_failure_after_ringing_is_not_a_format_failure(status: int) -> None:
    """A 404 after a 180 means the number was routed: trying +86 next would call the person again."""
    result = classify(status, rang=True)
    assert result.outcome is Outcome.FAILED
    assert result.action is Action.COMPLETE


def test_our_ring_timeout_cancel_is_no_answer() -> None:
    """487 after our own CANCEL (ring timeout) is a no-answer, retried by campaign policy."""
    result = classify(487, rang=True, ring_timeout_fired=True)
    assert (result.outcome, result.action) == (Outcome.NO_ANSWER, Action.RETRY_LATER)


def test_408_after_ringing_is_no_answer() -> None:
    assert classify(408, rang=True).outcome is Outcome.NO_ANSWER


@pytest.mark.parametrize("status", [None, 0, 100, 180])
def test_no_final_response_is_transient(status: int | None) -> None:
    """A transport error or timeout (no final response) backs off and retries later."""
    assert classify(status).action is Action.BACKOFF


def test_outcome_values_are_their_words() -> None:
    """The enum value is at once the column value, the metric label and the CLI word."""
    assert str(Outcome.NO_ANSWER) == "no_answer"
    assert Outcome("worker_lost") is Outcome.WORKER_LOST
