"""A real proxy on another host: Kamailio and its sipp gateway in a network namespace at 198.18.11.2.

tests/integration/test_pbx_on_another_host.py puts sipp alone on the other
host; here the registrar is Kamailio (real nonces, usrloc, record-routing)
listening only on the namespace's address, relaying to a number-plan gateway
beside it. ``dialer call`` runs in our namespace with nothing set but the
registrar and the account, so the SIP agent must pick 198.18.11.1 (the veth
facing the proxy) for Via and Contact: a 127.0.0.1 there would register a
binding the proxy can never reach, and the gateway's answers would not
come back.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.kamailio import Kamailio, start_kamailio
from tests.support.netns import NetnsHost, capture_in, netns_host, start_sipp_in
from tests.support.sipp import SippPeer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
SUBNET = "198.18.11"
USER = "dialer-test"
NUMBER = "13900001111"  # fictional
ANSWERED = f"+86{NUMBER}"
GATEWAY_PORT = 5070  # inside the namespace nobody else binds: a fixed port is safe there


@dataclass(frozen=True)
class RemoteCarrier:
    """The namespace, the proxy and gateway inside it, and the trunk's password."""

    host: NetnsHost
    proxy: Kamailio
    gateway: SippPeer
    password: str


@pytest.fixture
def remote_carrier(tmp_path: Path) -> Iterator[RemoteCarrier]:
    """Kamailio on 198.18.11.2 relaying to sipp on 198.18.11.2:5070; both stopped, the namespace deleted."""
    password = os.urandom(12).hex()
    with netns_host(SUBNET, prefix="sd10c") as host:
        gateway = start_sipp_in(host, "number_plan", tmp_path / "sipp", port=GATEWAY_PORT)
        try:
            proxy = start_kamailio(tmp_path / "kamailio", gateway=gateway.address, username=USER,
                                   password=password, host=host.address,
                                   command_prefix=host.command([]))
            try:
                yield RemoteCarrier(host, proxy, gateway, password)
            finally:
                proxy.stop()
        finally:
            gateway.stop()


def test_dialer_call_registers_and_dials_through_kamailio_on_another_host(
    remote_carrier: RemoteCarrier, tmp_path: Path
) -> None:
    """UDP: 401 -> 200, then 407 -> 404, 404, 200 answered.

    Via and Contact of the REGISTERs (on the wire, from a capture in the
    namespace) and of the relayed INVITEs (at the gateway) carry 198.18.11.1,
    never 127.0.0.1.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("DIALER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    host = remote_carrier.proxy.address("udp")
    env.update(DIALER_SIP_REGISTRAR=host, DIALER_SIP_USERNAME=USER, DIALER_SIP_PASSWORD=remote_carrier.password,
               DIALER_SIP_TRANSPORT="udp")
    with capture_in(remote_carrier.host, tmp_path / "sip.pcap") as pcap:
        done = subprocess.run([sys.executable, "-c", "from shared.cli import main; main()", "call", NUMBER],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.stdout.splitlines() == [
        f"REGISTER sip:{host} -> 401 -> 200 OK",
        f"INVITE sip:{NUMBER}@{host} [national] -> 407 -> 100 404 Not Found => not_found",
        f"INVITE sip:86{NUMBER}@{host} [cc] -> 407 -> 100 404 Not Found => not_found",
        f"INVITE sip:{ANSWERED}@{host} [e164] -> 407 -> 100 180 200 OK => answered",
        "outcome: answered",
    ], done.stderr + remote_carrier.proxy.log_text()[-3000:]
    assert done.returncode == 0
    assert remote_carrier.password not in done.stdout + done.stderr

    ours = remote_carrier.host.peer_address
    gateway = remote_carrier.gateway
    gateway.stop()  # flushes sipp's trace
    assert [(d.request_uri, d.final_status) for d in gateway.dialogs()] == [
        (f"sip:{NUMBER}@{gateway.address}", 404), (f"sip:86{NUMBER}@{gateway.address}", 404),
        (f"sip:{ANSWERED}@{gateway.address}", 200),
    ]
    for invite in gateway.received("INVITE"):
        vias = [value for key, value in invite.headers if key.lower() in ("via", "v")]
        assert any(ours in via for via in vias), vias  # the dialer's own Via, below Kamailio's
        assert not any("127.0.0.1" in via for via in vias), vias
        contact = invite.header("Contact") or ""
        assert ours in contact and "127.0.0.1" not in contact, contact
    registers = _sip_fields(pcap, remote_carrier.proxy.udp_port, "REGISTER")
    assert registers, "the capture holds the REGISTERs that reached Kamailio"
    for via, contact in registers:
        assert ours in via and ours in contact, (via, contact)
        assert "127.0.0.1" not in via + contact, (via, contact)


def _sip_fields(pcap: Path, port: int, method: str) -> list[tuple[str, str]]:
    """(Via, Contact) of each ``method`` request to ``port`` in ``pcap``, decoded as SIP by tshark."""
    done = subprocess.run(
        ["tshark", "-r", str(pcap), "-d", f"udp.port=={port},sip", "-Y",
         f"sip.Method == \"{method}\" && udp.dstport == {port}", "-T", "fields", "-E", "separator=|",
         "-e", "sip.Via", "-e", "sip.Contact"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    return [(line.split("|")[0], line.split("|")[1]) for line in done.stdout.splitlines() if "|" in line]
