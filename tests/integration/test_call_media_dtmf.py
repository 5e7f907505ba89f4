"""DTMF reaches the call flow from real peers: RFC 2833 on payload type 101, and SIP INFO.

sipp plays Debian sip-tester's ``dtmf_2833_*.pcap``, whose events are on
payload type 101 whatever was negotiated (as many gateways do); pjsua 2.15
would offer 121 and drop them, so the offer must carry 101. SIP INFO digits
(application/dtmf-relay) come from a sipp scenario that presses 50 keys in
about a second: every one reaches the script and the process survives.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest

from tests.support.answer_scripts import ScriptedTest
from tests.support.sipp import SippPeer, free_port
from worker.sip import SipAccountConfig, SipAgent

pytestmark = pytest.mark.integration
Sipp = Callable[..., SippPeer]


@pytest.fixture
def agent_for() -> Iterator[Callable[[SippPeer], SipAgent]]:
    agents: list[SipAgent] = []

    def build(peer: SippPeer) -> SipAgent:
        agent = SipAgent(SipAccountConfig(registrar=peer.address, username="dialer", password="unused",
                                          register=False))
        agent.start()
        agents.append(agent)
        return agent

    yield build
    for agent in agents:
        agent.stop(grace_s=0)


def test_rfc2833_digits_on_pt_101_reach_the_script(sipp_uas: Sipp, agent_for: Callable[[SippPeer], SipAgent]) -> None:
    """Our offer puts telephone-event/8000 on 101; the peer's 1 and 9 on PT 101 arrive as on_dtmf, in order."""
    peer = sipp_uas("dtmf_2833", extra_args=["-mp", str(free_port())])
    script = ScriptedTest(until=lambda s: len(s.digits) >= 2)
    result = agent_for(peer).call(f"sip:callee@{peer.address}", timeout_s=30, script_factory=lambda: script)
    assert result.answered and not script.timed_out
    assert script.digits == "19"
    [invite] = peer.received("INVITE")
    assert re.search(r"^a=rtpmap:101 telephone-event/8000", invite.body, re.M)
    assert re.search(r"^m=audio \d+ RTP/AVP [\d ]*\b101\b", invite.body, re.M)
    assert result.flow is not None and result.flow["digits"] == "19"


def test_sip_info_flood_of_50_digits_loses_none(sipp_uas: Sipp, agent_for: Callable[[SippPeer], SipAgent]) -> None:
    """50 SIP INFO digits in about a second: the script gets all 50, the call ends normally."""
    peer = sipp_uas("dtmf_info_flood", pause_ms=20)
    script = ScriptedTest(until=lambda s: len(s.digits) >= 50)
    result = agent_for(peer).call(f"sip:callee@{peer.address}", timeout_s=30, script_factory=lambda: script)
    assert result.answered and not script.timed_out and result.hangup_by == "local"
    assert script.digits == "5" * 50
    answers = [m.status for m in peer.messages() if m.direction == "rx" and m.cseq_method == "INFO"]
    assert answers == [200] * 50
