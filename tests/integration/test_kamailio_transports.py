"""UDP, TCP and TLS through a real proxy: Kamailio as registrar and SBC, a sipp gateway behind it over UDP.

The proxy (tests/support/kamailio.py) checks digests with real nonces,
refuses INVITEs from a contact that holds no binding (403 "Not Registered"),
and re-targets each INVITE with ``rewritehostport``, keeping the URI's
parameters, to a gateway that speaks only UDP and plays a carrier's number
plan (404 for the national and 86 forms, 200 for +86). So a ``transport``
parameter left on the dialled URI, registrations that replace each other, and
certificates nobody checks all show here as they would at a carrier.

The ladders are those of ``dialer call``, the real command in a subprocess
configured only by ``DIALER_SIP_*`` variables.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared.settings import load_settings
from tests.support.kamailio import Kamailio, TestCa, TlsListener, start_kamailio
from tests.support.sipp import SippPeer, start_sipp_uas
from worker import runtime
from worker.sip import SipAccountConfig, SipAgent
from worker.sip.errors import CertificateRejected

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
USER = "dialer-test"
NUMBER = "13900001111"  # fictional
ANSWERED = f"+86{NUMBER}"


@dataclass(frozen=True)
class Carrier:
    """A gateway behind a proxy, the CA the proxy's good certificate comes from, and a password."""

    gateway: SippPeer
    proxy: Kamailio
    ca: TestCa
    password: str


@pytest.fixture(scope="module")
def carrier(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Carrier]:
    """One Kamailio with a TLS listener per certificate case, the number-plan gateway behind it."""
    folder = tmp_path_factory.mktemp("carrier")
    password = os.urandom(12).hex()
    gateway = start_sipp_uas("number_plan", folder / "sipp")
    try:
        ca, other_ca = TestCa.create(folder / "ca", "carrier"), TestCa.create(folder / "ca", "stranger")
        listeners = [
            TlsListener("good", ca.issue("proxy", ip="127.0.0.1")),
            TlsListener("other-ca", other_ca.issue("impostor", ip="127.0.0.1")),
            TlsListener("other-name", ca.issue("elsewhere", dns="carrier.invalid")),
        ]
        proxy = start_kamailio(folder / "kamailio", gateway=gateway.address, username=USER, password=password,
                               tls=listeners)
        try:
            yield Carrier(gateway, proxy, ca, password)
        finally:
            proxy.stop()
    finally:
        gateway.stop()


def trunk_env(carrier: Carrier, transport: str, listener: str | None = None, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DIALER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(DIALER_SIP_REGISTRAR=carrier.proxy.address(transport, listener), DIALER_SIP_USERNAME=USER,
               DIALER_SIP_PASSWORD=carrier.password, DIALER_SIP_TRANSPORT=transport,
               DIALER_SIP_TLS_CA_FILE=str(carrier.ca.cert), **extra)
    return env


def dialer_call(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from shared.cli import main; main()", "call", NUMBER, *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)


def gateway_calls_since(carrier: Carrier, before: int) -> list[tuple[str, int | None]]:
    return [(d.request_uri, d.final_status) for d in carrier.gateway.dialogs()[before:]]


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_ladder_completes_over_each_transport(carrier: Carrier, transport: str, tmp_path: Path) -> None:
    """401 -> 200, then 407 -> 404, 404 and 200 answered; the gateway sees URIs without a transport parameter."""
    before = len(carrier.gateway.dialogs())
    done = dialer_call(trunk_env(carrier, transport, "good"), tmp_path)
    host = carrier.proxy.address(transport, "good")
    assert done.stdout.splitlines() == [
        f"REGISTER sip:{host} -> 401 -> 200 OK",
        f"INVITE sip:{NUMBER}@{host} [national] -> 407 -> 100 404 Not Found => not_found",
        f"INVITE sip:86{NUMBER}@{host} [cc] -> 407 -> 100 404 Not Found => not_found",
        f"INVITE sip:{ANSWERED}@{host} [e164] -> 407 -> 100 180 200 OK => answered",
        "outcome: answered",
    ], done.stderr
    assert done.returncode == 0
    gateway = carrier.gateway.address
    assert gateway_calls_since(carrier, before) == [
        (f"sip:{NUMBER}@{gateway}", 404), (f"sip:86{NUMBER}@{gateway}", 404), (f"sip:{ANSWERED}@{gateway}", 200),
    ]
    assert carrier.password not in done.stdout + done.stderr


def test_sips_trunk_dials_sips_uris_over_tls(carrier: Carrier, tmp_path: Path) -> None:
    """sips = true: REGISTER and INVITEs to sips: URIs over the verified TLS hop; the ladder completes."""
    before = len(carrier.gateway.dialogs())
    done = dialer_call(trunk_env(carrier, "tls", "good", DIALER_SIP_SIPS="true"), tmp_path)
    host = carrier.proxy.address("tls", "good")
    assert done.stdout.splitlines() == [
        f"REGISTER sips:{host} -> 401 -> 200 OK",
        f"INVITE sips:{NUMBER}@{host} [national] -> 407 -> 100 404 Not Found => not_found",
        f"INVITE sips:86{NUMBER}@{host} [cc] -> 407 -> 100 404 Not Found => not_found",
        f"INVITE sips:{ANSWERED}@{host} [e164] -> 407 -> 100 180 200 OK => answered",
        "outcome: answered",
    ], done.stderr
    assert [status for _, status in gateway_calls_since(carrier, before)] == [404, 404, 200]


@pytest.mark.parametrize(("listener", "why"), [("other-ca", "untrusted"), ("other-name", "not match")])
def test_untrusted_certificate_is_a_configuration_error(
    carrier: Carrier, listener: str, why: str, tmp_path: Path
) -> None:
    """Another CA's certificate, or one for another name: one error line naming trunk, host, reason; no INVITE."""
    before = len(carrier.gateway.dialogs())
    done = dialer_call(trunk_env(carrier, "tls", listener), tmp_path)
    host = carrier.proxy.address("tls", listener)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: trunk 'default' (host {host}): the trunk's certificate is not trusted: "), error
    assert why in error.lower()
    assert "INVITE" not in done.stdout
    assert gateway_calls_since(carrier, before) == []


def test_verification_off_is_warned_about(carrier: Carrier, tmp_path: Path) -> None:
    """tls_verify = false reaches the impostor, and says loudly at start that nothing was checked."""
    env = trunk_env(carrier, "tls", "other-ca", DIALER_SIP_TLS_VERIFY="false")
    done = dialer_call(env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "TLS certificate verification is OFF" in done.stderr


_PROCESS = """
import sys
from shared.settings import load_settings
from worker.runtime import account_for
from worker.sip import SipAgent

agent = SipAgent(account_for(load_settings().trunk()))
reg = agent.start()
print("registered" if reg is not None and reg.registered else f"not registered: {reg}", flush=True)
for line in sys.stdin:
    if not line.strip():
        break
    result = agent.call(agent.uri_for(line.strip()), ring_timeout_s=20)
    print(result.status, result.reason, flush=True)
agent.stop(grace_s=2)
"""


def test_three_processes_keep_three_bindings_and_all_call(carrier: Carrier) -> None:
    """Three worker processes over TCP: three bindings at the registrar, and each one's INVITE is answered."""
    env = trunk_env(carrier, "tcp")
    procs = [subprocess.Popen([sys.executable, "-c", _PROCESS], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for _ in range(3)]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "registered"
        # The first two registered before the third: with one +sip.instance for the host, the third
        # REGISTER would have replaced their binding and their INVITEs would get 403 Not Registered.
        contacts = [c for c in carrier.proxy.contacts() if ";transport=tcp" in c.lower()]
        assert len(set(contacts)) == 3, carrier.proxy.kamcmd("ul.dump")
        instances = [line.split(":", 1)[1].strip() for line in carrier.proxy.kamcmd("ul.dump").splitlines()
                     if line.strip().startswith("Instance:") and "urn:uuid" in line]
        assert len(set(instances)) >= 3
        for proc in procs:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(f"{ANSWERED}\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "200 OK"
    finally:
        for proc in procs:  # an empty stdin ends the loop: each process un-REGISTERs and exits
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


def test_worker_with_untrusted_certificate_never_starts_consuming(
    carrier: Carrier, database_url: str, redis_url: str
) -> None:
    """A worker whose trunk's certificate is not trusted stops at REGISTER with the configuration error."""
    settings = load_settings(
        database_url=database_url, redis_url=redis_url, sip_registrar=carrier.proxy.address("tls", "other-ca"),
        sip_transport="tls", sip_username=USER, sip_password=carrier.password, sip_tls_ca_file=str(carrier.ca.cert),
    )
    try:
        with pytest.raises(CertificateRejected, match="the trunk's certificate is not trusted"):
            runtime.start(settings, None, name="test-worker", register_attempts=1)
    finally:
        runtime.stop(grace_s=1)
    # The failed start released the process's one Endpoint: a new agent can start here.
    agent = SipAgent(SipAccountConfig(registrar=carrier.proxy.address("udp"), username=USER, password="",
                                      register=False))
    assert agent.start() is None
    agent.stop(grace_s=0)
