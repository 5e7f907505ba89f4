"""A PBX on another host, really: sipp in a network namespace at 198.18.10.2, the dialer in ours.

With loopback binding (the old default) none of this works: a socket bound to
127.0.0.1 cannot send to 198.18.10.2, so REGISTER never leaves. With nothing
set but the registrar, the SIP agent must bind to and advertise 198.18.10.1,
the address of the interface that routes there, in Via, Contact and SDP, and
RTP must flow both ways (sipp echoes what it receives: ``-rtp_echo``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.netns import NetnsHost, capture_in, netns_host, rtp_packets, start_sipp_in
from tests.support.sipp import DEFAULT_KEYS
from worker.sip import SipAccountConfig, SipAgent

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
SUBNET = "198.18.10"
USER, SECRET = DEFAULT_KEYS["username"], DEFAULT_KEYS["password"]
NUMBER = "13900001111"  # fictional


@pytest.fixture
def pbx_host() -> Iterator[NetnsHost]:
    """A namespace of its own, deleted at teardown even when the test fails."""
    with netns_host(SUBNET, prefix="sd10a") as host:
        yield host


def _hosts_in(text: str) -> set[str]:
    import re

    return set(re.findall(r"\b(?:\d{1,3}\.){3}\d{1,3}\b", text))


def test_agent_registers_dials_the_ladder_and_exchanges_rtp_with_a_pbx_on_another_host(
    pbx_host: NetnsHost, tmp_path: Path
) -> None:
    """REGISTER 401 -> 200, then 404, 404, 200 over the variants; RTP both ways; only 198.18.10.1 advertised."""
    peer = start_sipp_in(pbx_host, "carrier", tmp_path / "sipp", extra_args=["-rtp_echo", "-mp", "6000"])
    try:
        account = SipAccountConfig(registrar=f"{pbx_host.address}:5060", username=USER, password=SECRET)
        with capture_in(pbx_host, tmp_path / "rtp.pcap") as pcap, SipAgent(account) as agent:
            registered = agent.start()
            assert registered is not None and (registered.status, registered.challenges) == (200, (401,))
            assert agent.local_address.startswith(f"{pbx_host.peer_address}:")
            results = [agent.call(agent.uri_for(user), ring_timeout_s=10, hold_s=2.0)
                       for user in (NUMBER, f"86{NUMBER}", f"+86{NUMBER}")]
        assert [r.status for r in results] == [404, 404, 200]
        assert results[-1].answered
    finally:
        peer.stop()
    invites = [m for m in peer.received("INVITE") if m.header("Proxy-Authorization")]
    answered = invites[-1]
    advertised = _hosts_in(" ".join([answered.header("Via") or "", answered.header("Contact") or "", answered.body]))
    assert advertised == {pbx_host.peer_address}, advertised
    assert rtp_packets(pcap, pbx_host.peer_address, pbx_host.address) > 10, "RTP from the dialer reached the PBX"
    assert rtp_packets(pcap, pbx_host.address, pbx_host.peer_address) > 10, "the PBX's RTP was sent back to us"



NAT_ADDRESS = "198.18.99.7"  # the address a NAT would show the PBX: nothing of ours holds it


@pytest.mark.parametrize(("bind", "public", "advertised"), [
    ("0.0.0.0", None, "route"),  # every interface: advertise the one routing to the PBX, never 0.0.0.0
    (None, NAT_ADDRESS, NAT_ADDRESS),  # behind a NAT: the public address, still sent from the routed interface
], ids=["bind-any", "public-address"])
def test_bind_and_public_address_settings_reach_via_contact_and_sdp(
    pbx_host: NetnsHost, tmp_path: Path, bind: str | None, public: str | None, advertised: str
) -> None:
    """DIALER_SIP_BIND_ADDRESS / DIALER_SIP_PUBLIC_ADDRESS through `dialer call`: what REGISTER and INVITE carry."""
    expected = pbx_host.peer_address if advertised == "route" else advertised
    peer = start_sipp_in(pbx_host, "carrier", tmp_path / "sipp")
    settings = {"DIALER_SIP_BIND_ADDRESS": bind, "DIALER_SIP_PUBLIC_ADDRESS": public}
    try:
        done = _dialer_call(pbx_host, tmp_path, {k: v for k, v in settings.items() if v})
    finally:
        peer.stop()
    assert done.returncode == 0 and "outcome: answered" in done.stdout, done.stdout + done.stderr
    for message in peer.received("REGISTER")[-1:] + peer.received("INVITE")[-1:]:
        carried = " ".join([message.header("Via") or "", message.header("Contact") or "", message.body])
        assert _hosts_in(carried) == {expected}, (message.method, carried)


def _dialer_call(pbx_host: NetnsHost, tmp_path: Path, settings: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`dialer call NUMBER --hold 1` as an operator runs it: only DIALER_SIP_* (and ``settings``) in its env."""
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(DIALER_SIP_REGISTRAR=f"{pbx_host.address}:5060", DIALER_SIP_USERNAME=USER,
               DIALER_SIP_PASSWORD=SECRET, **settings)
    return subprocess.run([sys.executable, "-c", "from shared.cli import main; main()", "call", NUMBER,
                           "--hold", "1"], cwd=workdir, env=env, capture_output=True, text=True, timeout=120,
                          check=False)

def test_dialer_call_reaches_a_pbx_on_another_host_with_only_the_registrar_set(
    pbx_host: NetnsHost, tmp_path: Path
) -> None:
    """The operator's first command: `dialer call` with DIALER_SIP_* only prints the whole ladder, exit 0.

    DIALER_RTP_PORT_RANGE (a firewall's open range) is honoured: every SDP offer's port lies in it.
    """
    peer = start_sipp_in(pbx_host, "carrier", tmp_path / "sipp", extra_args=["-rtp_echo"])
    host = f"{pbx_host.address}:5060"
    try:
        done = _dialer_call(pbx_host, tmp_path, {"DIALER_RTP_PORT_RANGE": "30000-30099"})
    finally:
        peer.stop()
    assert done.stdout.splitlines() == [
        f"REGISTER sip:{host} -> 401 -> 200 OK",
        f"INVITE sip:{NUMBER}@{host} [national] -> 407 -> 404 Not Found => not_found",
        f"INVITE sip:86{NUMBER}@{host} [cc] -> 407 -> 404 Not Found => not_found",
        f"INVITE sip:+86{NUMBER}@{host} [e164] -> 407 -> 100 180 200 OK => answered",
        "outcome: answered",
    ], done.stderr
    assert done.returncode == 0
    contacts = {m.header("Contact") for m in peer.received("REGISTER")}
    assert all(pbx_host.peer_address in (c or "") for c in contacts), contacts
    ports = [int(m.body.split("m=audio ", 1)[1].split()[0]) for m in peer.received("INVITE")]
    assert ports and all(30000 <= p < 30100 for p in ports), ports


@pytest.mark.slow
def test_a_worker_fleet_dials_a_pbx_on_another_host_each_process_in_its_own_rtp_slice(
    pbx_host: NetnsHost, tmp_path: Path
) -> None:
    """`dialer worker --processes 2` with DIALER_RTP_PORT_RANGE=30000-30099 and the registrar in the namespace.

    Pins: every job completes (each number dialled once); every INVITE's
    Contact and SDP carry 198.18.10.1; every SDP port lies in the range, and
    each process stays in its own half (30000-30049, 30050-30099), both used.
    """
    from tests.faults.rig import Plan, fault_rig, start_campaign, start_dispatchers

    peer = start_sipp_in(pbx_host, "fault_hold", tmp_path / "ns-sipp", extra_args=["-rtp_echo"],
                         keys={"username": "u", "password": "p"})
    try:
        with fault_rig(tmp_path / "rig", scenario="answer_fast") as rig:
            rig.fleet.start_worker(2, name="workers", env={"DIALER_SIP_REGISTRAR": f"{pbx_host.address}:5060",
                                                           "DIALER_RTP_PORT_RANGE": "30000-30099"})
            start_dispatchers(rig)
            campaign_id = start_campaign(rig, Plan("off-loopback", jobs=16, hold_s=1.0))
            rig.wait_settled(campaign_id, 120, statuses=("completed",))
    finally:
        peer.stop()
    invites = peer.received("INVITE")
    assert sorted(d.user for d in peer.dialogs()) == [f"139000{i:05d}" for i in range(16)]
    assert all(pbx_host.peer_address in (m.header("Contact") or "") for m in invites)
    ports = {int(m.body.split("m=audio ", 1)[1].split()[0]) for m in invites}
    assert all(30000 <= p < 30100 for p in ports), ports
    assert {p < 30050 for p in ports} == {True, False}, ports  # both processes dialled, each in its half
    assert _hosts_in(" ".join(m.body for m in invites)) == {pbx_host.peer_address}
