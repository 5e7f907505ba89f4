"""Reading pjsua's own log for the 401/407s it answers, against lines captured from the 2.15.1 wheel.

The lines below are verbatim output of this wheel's pjsip (decor: sender
only) during a REGISTER and an INVITE against tests/sipp/carrier.xml; the
parser must keep working on exactly these, and ignore their neighbours.
"""

from __future__ import annotations

import pytest

from worker.sip.responses import ResponseLog, SeenResponse, parse_incoming, request_cseq

REGISTER_401 = (
    "     tsx0x7f3dd80770a8 Incoming Response msg 401/REGISTER/cseq=63347 (rdata0x7f3dd806ff68)"
    " in state Calling"
)
REGISTER_200 = (
    "     tsx0x7f3dd807a038 Incoming Response msg 200/REGISTER/cseq=63348 (rdata0x7f3dd806ff68)"
    " in state Calling"
)
REGISTER_403 = (
    "     tsx0x7f3dd807a038 Incoming Response msg 403/REGISTER/cseq=63348 (rdata0x7f3dd806ff68)"
    " in state Calling"
)
INVITE_407 = (
    "     tsx0x7f3dd8088488 Incoming Response msg 407/INVITE/cseq=27119 (rdata0x7f3dd806ff68)"
    " in state Calling"
)
INVITE_404 = (
    "     tsx0x7f3dd808f078 Incoming Response msg 404/INVITE/cseq=27120 (rdata0x7f3dd806ff68)"
    " in state Calling"
)
NEIGHBOURS = [
    # the same responses as other layers report them: each response must count once
    "        sip_endpoint.c Processing incoming message: Response msg 401/REGISTER/cseq=63347 (rdata0x7f3dd806ff68)",
    "     dlg0x7f3dd807b3b8 Received Response msg 407/INVITE/cseq=27119 (rdata0x7f3dd806ff68)",
    # a retransmitted 407, absorbed by the finished transaction
    "     tsx0x7f3dd8088488 Incoming Response msg 407/INVITE/cseq=27119 (rdata0x7f3dd806ff68) in state Completed",
    "     tsx0x7f3dd808f078 Transaction created for Request msg INVITE/cseq=27120 (tdta0x7f3dd8085518)",
    "     udp0x7f3dd806e4e0 Request msg INVITE/cseq=27119 (tdta0x7f3dd8085518) sent successfully",
    "",
]


def test_transaction_lines_are_parsed() -> None:
    """Code, method and CSeq come from the transaction layer's line, the one logged once per response."""
    assert parse_incoming(REGISTER_401) == SeenResponse(401, "REGISTER", 63347)
    assert parse_incoming(INVITE_407) == SeenResponse(407, "INVITE", 27119)


@pytest.mark.parametrize("line", NEIGHBOURS)
def test_other_lines_are_ignored(line: str) -> None:
    """Endpoint and dialog echoes, retransmissions and request lines are not responses received."""
    assert parse_incoming(line) is None


def test_request_cseq_from_the_tx_summary() -> None:
    """SipTxData.info names the INVITE's CSeq; another method's summary gives nothing."""
    assert request_cseq("Request msg INVITE/cseq=27120 (tdta0x7f3dd8085518)") == 27120
    assert request_cseq("Request msg BYE/cseq=27121 (tdta0x7f3dd8085518)") is None
    assert request_cseq("") is None


def test_register_challenge_then_accept() -> None:
    """401 then 200: the 200 is the result, the 401 its one challenge; taking them clears them."""
    log = ResponseLog()
    for line in (REGISTER_401, *NEIGHBOURS, REGISTER_200):
        log.feed(line)
    assert log.take_register_challenges(200) == (401,)
    assert log.take_register_challenges(200) == ()


def test_wrong_password_is_a_challenge_then_403() -> None:
    """401, our wrong digest, 403: the 401 was answered, the 403 is the result."""
    log = ResponseLog()
    log.feed(REGISTER_401)
    log.feed(REGISTER_403)
    assert log.take_register_challenges(403) == (401,)


def test_unanswerable_401_is_the_result_not_a_challenge() -> None:
    """A 401 pjsua has no credentials for is reported by pjsua as the final 401 itself."""
    log = ResponseLog()
    log.feed(REGISTER_401)
    assert log.take_register_challenges(401) == ()


def test_challenge_then_local_timeout_keeps_the_challenge() -> None:
    """401, then nothing: pjsua's own 408 never crossed the wire, so the 401 still counts."""
    log = ResponseLog()
    log.feed(REGISTER_401)
    assert log.take_register_challenges(408) == (401,)


def test_invite_challenge_is_claimed_once_and_only_by_its_cseq() -> None:
    """The latest INVITE response is the challenge of the INVITE with that CSeq, and only once."""
    log = ResponseLog()
    log.feed(INVITE_407)
    assert log.invite_challenge(27118) is None  # another INVITE's CSeq
    assert log.invite_challenge(27119) == 407
    assert log.invite_challenge(27119) is None


def test_a_final_invite_response_is_no_challenge() -> None:
    """A 404 (or any non-401/407) to the latest INVITE is never reported as a challenge."""
    log = ResponseLog()
    log.feed(INVITE_407)
    log.feed(INVITE_404)
    assert log.invite_challenge(27119) is None
    assert log.invite_challenge(27120) is None
