"""DTMF reaches the call flow from real peers: RFC 2833 on payload type 101, and SIP INFO.

sipp plays Debian sip-tester's ``dtmf_2833_*.pcap``, whose events are on
payload type 101 whatever was negotiated (as many gateways do); pjsua 2.15
would offer 121 and drop them, so the offer must carry 101. SIP INFO digits
(application/dtmf-relay) come from a sipp scenario that presses 50 keys in
about a second: every one reaches the script and the process survives.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

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


def write_dtmf_flood_pcap(path: Path, digits: str, spacing_s: float) -> None:
    """A pcap sipp can replay: one RFC 2833 press per digit (start, then 3 end packets), PT 101."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]  # Ethernet link type
    seq, ts = 1000, 8000
    for i, digit in enumerate(digits):
        for k in range(4):
            end = k > 0
            rtp = struct.pack("!BBHII", 0x80, (0x80 if k == 0 else 0) | 101, seq, ts, 0x5EED)
            rtp += struct.pack("!BBH", int(digit), (0x80 if end else 0) | 10, 160)
            seq += 1
            udp = struct.pack("!HHHH", 40000, 10000, 8 + len(rtp), 0) + rtp
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i, 0, 64, 17, 0,
                             bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])) + udp
            frame = b"\0" * 12 + b"\x08\x00" + ip
            at = i * spacing_s + k * 0.002
            out.append(struct.pack("<IIII", int(at), round((at % 1) * 1e6), len(frame), len(frame)) + frame)
        ts += 160
    path.write_bytes(b"".join(out))


def test_rfc2833_flood_of_50_digits_loses_none(
    sipp_uas: Sipp, agent_for: Callable[[SippPeer], SipAgent], tmp_path: Path
) -> None:
    """50 RFC 2833 presses in one second on PT 101: all 50 reach the script, in order."""
    digits = "0123456789" * 5
    (tmp_path / "sipp").mkdir(exist_ok=True)
    write_dtmf_flood_pcap(tmp_path / "sipp" / "dtmf_flood.pcap", digits, 0.02)
    peer = sipp_uas("dtmf_2833_flood", extra_args=["-mp", str(free_port())])
    script = ScriptedTest(until=lambda s: len(s.digits) >= 50)
    result = agent_for(peer).call(f"sip:callee@{peer.address}", timeout_s=30, script_factory=lambda: script)
    assert result.answered and not script.timed_out
    assert script.digits == digits
