"""Where SIP and RTP bind and what they advertise (worker/sip/network.py), and the settings that steer it."""

from __future__ import annotations

import itertools

import pytest

from shared.errors import ConfigError
from shared.settings import load_settings
from worker.sip.network import Addresses, NetworkSettings, plan_addresses, route_source, rtp_slice, split_hostport

ROUTES = {"198.18.10.2": "198.18.10.1", "pbx.example.invalid": "198.18.20.1"}


def router(host: str, port: int) -> str:
    return ROUTES[host]


def never(host: str, port: int) -> str:
    raise AssertionError("the route must not be looked up when the bind address is given")


def test_nothing_set_binds_to_and_advertises_the_interface_that_routes_to_the_registrar() -> None:
    """The default that makes a PBX on another host work: its route's source address, no public override."""
    assert plan_addresses("198.18.10.2:5060", NetworkSettings(), router) == Addresses("198.18.10.1", None)
    assert plan_addresses("pbx.example.invalid", NetworkSettings(), router) == Addresses("198.18.20.1", None)


def test_a_public_address_changes_only_what_is_advertised() -> None:
    """NAT: bind where the route says, advertise the address the PBX can send to."""
    got = plan_addresses("198.18.10.2:5060", NetworkSettings(public_address="198.19.0.7"), router)
    assert got == Addresses("198.18.10.1", "198.19.0.7")


def test_an_explicit_bind_address_is_used_as_is() -> None:
    """A given interface address is bound (and advertised unless a public address is set); no route lookup."""
    assert plan_addresses("198.18.10.2:5060", NetworkSettings(bind_address="198.18.10.4"), never) == Addresses(
        "198.18.10.4", None)


def test_the_wildcard_binds_everywhere_but_advertises_the_route_or_the_public_address() -> None:
    """0.0.0.0 alone would advertise the default interface, which a PBX elsewhere cannot answer."""
    assert plan_addresses("198.18.10.2:5060", NetworkSettings(bind_address="0.0.0.0"), router) == Addresses(
        "0.0.0.0", "198.18.10.1")
    wild_nat = NetworkSettings(bind_address="0.0.0.0", public_address="198.19.0.7")
    assert plan_addresses("198.18.10.2:5060", wild_nat, never) == Addresses("0.0.0.0", "198.19.0.7")


def test_route_source_of_loopback_is_loopback() -> None:
    """The real helper: a connected UDP socket's own address (nothing is sent)."""
    assert route_source("127.0.0.1", 5060) == "127.0.0.1"


def test_an_unresolvable_registrar_is_one_config_error_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match="DIALER_SIP_REGISTRAR"):
        route_source("no-such-host.invalid", 5060)


@pytest.mark.parametrize(("text", "expected"), [
    ("198.18.10.2:5070", ("198.18.10.2", 5070)), ("pbx.example.invalid", ("pbx.example.invalid", 5060)),
    ("[2001:db8::1]:5080", ("2001:db8::1", 5080)),
])
def test_split_hostport(text: str, expected: tuple[str, int]) -> None:
    assert split_hostport(text) == expected


def test_each_process_of_a_host_gets_its_own_even_slice_of_the_rtp_range() -> None:
    """Four processes on 10000-20000: disjoint slices, each starting on an even port, inside the range."""
    network = NetworkSettings(rtp_port_min=10000, rtp_port_max=20000)
    slices = [rtp_slice(network, i, 4, 4) for i in range(4)]
    assert slices[0] == (10000, 2498)
    # pjsua uses port .. port + portRange + 1 (its last RTP/RTCP pair included).
    for (start, size), (next_start, _) in itertools.pairwise(slices):
        assert start % 2 == 0 and start + size + 1 < next_start
    assert slices[-1][0] + slices[-1][1] + 1 <= 20000


def test_no_range_lets_the_os_pick() -> None:
    assert rtp_slice(NetworkSettings(), 0, 4, 4) == (0, 0)


def test_a_range_too_small_for_the_processes_is_one_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"DIALER_RTP_PORT_RANGE: 10000-10020 gives each of 4 worker processes"):
        rtp_slice(NetworkSettings(rtp_port_min=10000, rtp_port_max=10020), 0, 4, 4)


@pytest.mark.parametrize(("variable", "value"), [
    ("DIALER_SIP_BIND_ADDRESS", "10.0.0"), ("DIALER_SIP_BIND_ADDRESS", "eth0"),
    ("DIALER_SIP_PUBLIC_ADDRESS", "0.0.0.0"), ("DIALER_SIP_PUBLIC_ADDRESS", "host:5060"),
    ("DIALER_RTP_PORT_RANGE", "20000-10000"), ("DIALER_RTP_PORT_RANGE", "10000"), ("DIALER_RTP_PORT_RANGE", "80-90"),
])
def test_bad_network_settings_stop_the_process_with_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert str(raised.value).startswith(f"{variable}: ")


def test_good_network_settings_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIALER_SIP_BIND_ADDRESS", "0.0.0.0")
    monkeypatch.setenv("DIALER_SIP_PUBLIC_ADDRESS", "pbx-facing.example.invalid")
    monkeypatch.setenv("DIALER_RTP_PORT_RANGE", " 10000-20000 ")
    cfg = load_settings()
    assert (cfg.sip_bind_address, cfg.sip_public_address, cfg.rtp_ports) == (
        "0.0.0.0", "pbx-facing.example.invalid", (10000, 20000))
