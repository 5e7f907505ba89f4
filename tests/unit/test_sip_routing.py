"""Trunk transport settings: where the transport goes, which trunks need a password, unknown DIALER_* names.

Pure rules, no SIP stack: the URIs an account dials and routes through,
the TLS and REGISTER settings from the environment and the TOML file, and
the warning for a ``DIALER_*`` name no setting reads.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from shared.errors import ConfigError
from shared.settings import load_settings, unknown_environment
from worker.sip.config import SipAccountConfig
from worker.sip.tls_check import TlsVerifyFailure, certificate_message, is_certificate_failure, tls_ca_file

FAKE_PASSWORD = "not-a-real-secret-7"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DIALER_"):
            monkeypatch.delenv(name)


def account(**fields: object) -> SipAccountConfig:
    values: dict[str, object] = {"registrar": "127.0.0.1:5060", "username": "1001", "password": FAKE_PASSWORD}
    return SipAccountConfig(**{**values, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_transport_rides_on_the_route_never_on_the_dialled_uri(transport: str) -> None:
    """TCP/TLS: ``sip:+86...@host`` with no parameter; the route to the registrar carries ``transport=...;lr``."""
    acc = account(transport=transport)
    assert acc.uri_for("+8613900001111") == "sip:+8613900001111@127.0.0.1:5060"
    assert acc.proxy_uris() == (f"sip:127.0.0.1:5060;transport={transport};lr",)
    assert acc.registrar_uri() == "sip:127.0.0.1:5060"


def test_udp_straight_to_the_domain_needs_no_route() -> None:
    """UDP to the registrar's own domain: nothing to route, URIs as before."""
    acc = account()
    assert acc.proxy_uris() == ()
    assert acc.uri_for("13900001111") == "sip:13900001111@127.0.0.1:5060"


def test_outbound_proxy_is_the_first_hop_apart_from_the_registrar() -> None:
    """An outbound proxy takes every request; the dialled URIs keep the trunk's domain."""
    acc = account(registrar="carrier.invalid:5060", outbound_proxy="127.0.0.1:5070", transport="tcp")
    assert acc.proxy_uris() == ("sip:127.0.0.1:5070;transport=tcp;lr",)
    assert acc.uri_for("+8613900001111") == "sip:+8613900001111@carrier.invalid:5060"
    assert account(outbound_proxy="127.0.0.1:5070").proxy_uris() == ("sip:127.0.0.1:5070;lr",)


def test_sips_uses_sips_uris_and_needs_tls() -> None:
    """``sips = true``: sips: everywhere, the route implies TLS; with another transport it is refused."""
    acc = account(transport="tls", sips=True)
    assert (acc.account_uri(), acc.registrar_uri()) == ("sips:1001@127.0.0.1:5060", "sips:127.0.0.1:5060")
    assert acc.proxy_uris() == ("sips:127.0.0.1:5060;lr",)
    assert acc.uri_for("+8613900001111") == "sips:+8613900001111@127.0.0.1:5060"
    with pytest.raises(ConfigError, match="sips = true needs transport"):
        account(transport="tcp", sips=True)


def test_outbound_proxy_must_be_host_port() -> None:
    with pytest.raises(ConfigError, match="outbound_proxy must be host"):
        account(outbound_proxy="sip:proxy;lr")


def test_certificate_failure_is_recognised_and_explained() -> None:
    """pjsip's local 503 for PJSIP_TLS_ECERTVERIF is a certificate refusal; the message names trunk, host, why."""
    assert is_certificate_failure(503, "SSL certificate verification error (PJSIP_TLS_ECERTVERIF)")
    assert not is_certificate_failure(503, "Service Unavailable")
    message = certificate_message(account(transport="tls", name="cn1"),
                                  TlsVerifyFailure("127.0.0.1:5061", ("The certificate is untrusted",)))
    assert message.startswith("trunk 'cn1' (host 127.0.0.1:5060): the trunk's certificate is not trusted: "
                              "The certificate is untrusted")
    assert "DIALER_SIP_TLS_CA_FILE" in message


def test_tls_and_register_settings_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """DIALER_SIP_TLS_CA_FILE, _TLS_VERIFY, _OUTBOUND_PROXY, _REGISTER reach the default trunk."""
    ca = tmp_path / "ca.pem"
    ca.write_text("not parsed here\n")
    monkeypatch.setenv("DIALER_SIP_REGISTRAR", "carrier.invalid:5061")
    monkeypatch.setenv("DIALER_SIP_USERNAME", "1001")
    monkeypatch.setenv("DIALER_SIP_TRANSPORT", "tls")
    monkeypatch.setenv("DIALER_SIP_TLS_CA_FILE", str(ca))
    monkeypatch.setenv("DIALER_SIP_OUTBOUND_PROXY", "127.0.0.1:5071")
    monkeypatch.setenv("DIALER_SIP_REGISTER", "false")
    trunk = load_settings().trunk()
    assert (trunk.tls_ca_file, trunk.tls_verify, trunk.outbound_proxy, trunk.registers) == (
        ca, True, "127.0.0.1:5071", False)
    assert trunk.password.get_secret_value() == ""  # an IP-authenticated trunk needs none


def test_registering_trunk_still_needs_a_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIALER_SIP_REGISTRAR", "127.0.0.1:5060")
    monkeypatch.setenv("DIALER_SIP_USERNAME", "1001")
    with pytest.raises(ConfigError, match="DIALER_SIP_PASSWORD: required"):
        load_settings().trunk()


def test_missing_ca_file_names_the_trunk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "dialer.toml"
    config.write_text(
        '[[trunks]]\nname = "cn1"\nregistrar = "127.0.0.1:5061"\ntransport = "tls"\nusername = "1001"\n'
        f'password_env = "DIALER_TEST_PW"\ntls_ca_file = "{tmp_path / "absent.pem"}"\n'
    )
    monkeypatch.setenv("DIALER_TEST_PW", FAKE_PASSWORD)
    with pytest.raises(ConfigError, match=r"trunk 'cn1': tls_ca_file .* is not a readable file"):
        load_settings(config).trunk("cn1")


def test_toml_trunk_without_register_needs_no_password(tmp_path: Path) -> None:
    """``register = false`` in the file: no password source needed; the flags reach the trunk."""
    config = tmp_path / "dialer.toml"
    config.write_text(
        '[[trunks]]\nname = "ipauth"\nregistrar = "carrier.invalid:5060"\nusername = "1001"\n'
        'register = false\noutbound_proxy = "127.0.0.1:5070"\nrfc5626_outbound = false\ntls_verify = false\n'
    )
    trunk = load_settings(config).trunk("ipauth")
    assert (trunk.registers, trunk.outbound_proxy, trunk.rfc5626_outbound, trunk.tls_verify) == (
        False, "127.0.0.1:5070", False, False)


def test_unknown_dialer_names_get_the_closest_known_one() -> None:
    """A typo is named with its likely meaning; the test and bench tooling's own names are left alone."""
    found = unknown_environment({
        "DIALER_SIP_TLS_CAFILE": "x", "DIALER_NOTHING_LIKE_IT": "x", "DIALER_SIP_REGISTRAR": "x",
        "DIALER_TEST_DATABASE_URL": "x", "PATH": "/bin",
    })
    assert found == [("DIALER_NOTHING_LIKE_IT", None), ("DIALER_SIP_TLS_CAFILE", "DIALER_SIP_TLS_CA_FILE")]


def test_unknown_name_is_warned_at_load(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("DIALER_SIP_REGISTAR", "127.0.0.1:5060")
    with caplog.at_level(logging.WARNING, logger="shared.settings"):
        load_settings()
    assert "DIALER_SIP_REGISTAR is not a dialer setting and is ignored; did you mean DIALER_SIP_REGISTRAR?" in (
        caplog.text)


def test_without_a_ca_file_the_system_store_is_used(tmp_path: Path) -> None:
    """No tls_ca_file: the system's CA bundle (pjsip knows no store of its own); a trunk's own file wins."""
    system = tls_ca_file(account(transport="tls"))
    assert system is not None and Path(system).is_file()
    own = tmp_path / "carrier-ca.pem"
    assert tls_ca_file(account(transport="tls", tls_ca_file=str(own))) == str(own)
