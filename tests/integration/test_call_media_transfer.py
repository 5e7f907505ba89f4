"""Transfers against real peers: REFER with the NOTIFY sipfrag's result, and a bridged second call.

REFER: sipp accepts (202) and reports ``SIP/2.0 200 OK`` in a NOTIFY, or
refuses with 403. Bridge: the worker calls the agent itself and joins the two
calls in pjsua's conference bridge; two baresip phones sending different
tones prove audio crosses both ways. An agent that is busy or hangs up is
reported and ends what it must.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.answer_scripts import ScriptedTest
from tests.support.baresip import BaresipCallee, dominant_hz, read_wav, start_baresip_callee
from tests.support.sipp import SippPeer
from worker.sip import SipAccountConfig, SipAgent
from worker.sip.media import control

pytestmark = pytest.mark.integration
Sipp = Callable[..., SippPeer]


def start_agent(registrar: str) -> SipAgent:
    agent = SipAgent(SipAccountConfig(registrar=registrar, username="dialer", password="unused", register=False))
    agent.start()
    return agent


@pytest.fixture
def agents() -> Iterator[list[SipAgent]]:
    made: list[SipAgent] = []
    yield made
    for agent in made:
        agent.stop(grace_s=0)


def final_transfer(s: ScriptedTest) -> bool:
    return any(final for _, final in s.transfers)


def test_refer_accepted_reports_the_notify_200(sipp_uas: Sipp, agents: list[SipAgent]) -> None:
    """REFER answered 202, then NOTIFY sipfrag 200: on_transfer(200, final) and the REFER named the target."""
    peer = sipp_uas("refer_accept")
    agents.append(start_agent(peer.address))
    target = "sip:advisors@127.0.0.1:5999"
    script = ScriptedTest(on_answer_do=lambda ctl: ctl.transfer(target, "refer"), until=final_transfer)
    result = agents[0].call(f"sip:callee@{peer.address}", timeout_s=30, script_factory=lambda: script)
    assert result.answered and not script.timed_out
    assert script.transfers[-1] == (200, True)
    [refer] = peer.received("REFER")
    assert target in (refer.header("Refer-To") or refer.header("r") or "")
    assert [m.status for m in peer.messages() if m.direction == "rx" and m.cseq_method == "NOTIFY"] == [200]


def test_refer_refused_with_403_is_final(sipp_uas: Sipp, agents: list[SipAgent]) -> None:
    """A PBX that refuses REFER: on_transfer(403, True), and the call is still up for the fallback."""
    peer = sipp_uas("refer_forbidden")
    agents.append(start_agent(peer.address))
    script = ScriptedTest(on_answer_do=lambda ctl: ctl.transfer("sip:advisors@127.0.0.1:5999", "refer"),
                          until=final_transfer)
    result = agents[0].call(f"sip:callee@{peer.address}", timeout_s=30, script_factory=lambda: script)
    assert result.answered and not script.timed_out and result.hangup_by == "local"
    assert script.transfers == [(403, True)]
    assert script.hangup == "local"


def test_bridge_joins_customer_and_agent_both_ways(tmp_path: Path, agents: list[SipAgent]) -> None:
    """The bridged agent hears the customer's 440 Hz and the customer hears the agent's 660 Hz."""
    customer = start_baresip_callee(tmp_path / "customer", source_hz=440.0)
    agent_phone = start_baresip_callee(tmp_path / "agent", source_hz=660.0)
    try:
        agents.append(start_agent(customer.address))
        joined_at: list[float] = []

        def until(s: ScriptedTest) -> bool:
            if (200, True) in s.transfers and not joined_at:
                joined_at.append(s.now)
            return bool(joined_at) and s.now - joined_at[0] >= 2.0

        script = ScriptedTest(on_answer_do=lambda ctl: ctl.transfer(agent_phone.uri(), "bridge"), until=until)
        result = agents[0].call(customer.uri(), timeout_s=40, script_factory=lambda: script)
        agent_closed = wait_for(lambda: "session closed" in agent_phone.log())
    finally:
        customer.stop()
        agent_phone.stop()
    assert result.answered and not script.timed_out
    assert script.transfers[-1] == (200, True)
    assert agent_closed, "hanging up the customer must end the bridged agent's call"
    assert heard(customer) == pytest.approx(660.0, abs=10.0)
    assert heard(agent_phone) == pytest.approx(440.0, abs=10.0)


def wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """Poll another process's progress (its log), which has no event to wait on."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def heard(phone: BaresipCallee) -> float:
    [wav] = phone.recordings()
    samples, rate = read_wav(wav)
    return dominant_hz(samples, rate)


def test_bridge_to_a_busy_agent_reports_486_and_the_call_goes_on(
    sipp_uas: Sipp, agents: list[SipAgent], tmp_path: Path
) -> None:
    """The agent's 486 is the transfer's final result; the customer's call stays up for the fallback."""
    busy = sipp_uas("busy_486")
    customer = start_baresip_callee(tmp_path / "customer")
    try:
        agents.append(start_agent(customer.address))
        script = ScriptedTest(on_answer_do=lambda ctl: ctl.transfer(f"sip:agent@{busy.address}", "bridge"),
                              until=final_transfer)
        result = agents[0].call(customer.uri(), timeout_s=40, script_factory=lambda: script)
    finally:
        customer.stop()
    assert result.answered and not script.timed_out and result.hangup_by == "local"
    assert script.transfers[-1] == (486, True)


def test_agent_hanging_up_ends_the_customer_call(sipp_uas: Sipp, agents: list[SipAgent], tmp_path: Path) -> None:
    """Bridged, then the agent sends BYE: the worker hangs up the customer too (on_hangup local)."""
    agent_peer = sipp_uas("remote_bye", pause_ms=1000)
    customer = start_baresip_callee(tmp_path / "customer")
    try:
        agents.append(start_agent(customer.address))
        script = ScriptedTest(on_answer_do=lambda ctl: ctl.transfer(f"sip:agent@{agent_peer.address}", "bridge"))
        result = agents[0].call(customer.uri(), timeout_s=40, script_factory=lambda: script)
    finally:
        customer.stop()
    assert result.answered and not script.timed_out
    assert (200, True) in script.transfers
    assert script.hangup == "local" and result.hangup_by == "local"
    assert agent_peer.received("BYE") == [] and len(agent_peer.dialogs()) == 1


@pytest.mark.slow  # pjsua ignores the ICMP: the leg ends at the bridge's 30 s ring timeout
def test_bridge_to_an_unreachable_agent_is_final_and_the_call_goes_on(
    agents: list[SipAgent], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody listens at the agent's address: the leg's ring timeout gives a final failure; the customer stays."""
    monkeypatch.setattr(control, "BRIDGE_RING_TIMEOUT_S", 4.0)  # 30 s in production: the same path, sooner
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]  # closed again when the with block ends: nothing listens there
    customer = start_baresip_callee(tmp_path / "customer")
    try:
        agents.append(start_agent(customer.address))
        script = ScriptedTest(on_answer_do=lambda ctl: ctl.transfer(f"sip:agent@127.0.0.1:{dead}", "bridge"),
                              until=final_transfer, deadline_s=45.0)
        result = agents[0].call(customer.uri(), timeout_s=60, script_factory=lambda: script)
    finally:
        customer.stop()
    assert result.answered and not script.timed_out and result.hangup_by == "local"
    [(status, final)] = [t for t in script.transfers if t[1]]
    assert final and status >= 400
