"""Trunks that do not REGISTER, and a refused certificate on a dial job, against Kamailio and a sipp gateway.

An IP-authenticated trunk (or one that wants digest on INVITE only) is
dialled without any REGISTER, straight at the proxy or through an outbound
proxy that is not the trunk's host. And when the trunk's TLS certificate is
not trusted, a dial job must come back unconsumed -- no try recorded, the
attempt given back -- with the worker no longer taking the trunk's jobs, as
after an auth failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from shared.settings import load_settings
from tests.support.factories import add_jobs, create_campaign
from tests.support.fleet import wait_until
from tests.support.kamailio import Kamailio, KamailioFactory, TestCa, TlsListener
from tests.support.sipp import SippPeer, start_sipp_uas
from worker import runtime
from worker.job_runner import run_dial_job

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
USER = "dialer-test"
NUMBER = "13900001111"  # fictional
SECRET = os.urandom(12).hex()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SippPeer]:
    peer = start_sipp_uas("number_plan", tmp_path_factory.mktemp("gateway"))
    yield peer
    peer.stop()


@pytest.fixture
def proxy(kamailio: KamailioFactory, gateway: SippPeer) -> Callable[..., Kamailio]:
    """A Kamailio in front of the gateway that, like a carrier for unregistered trunks, wants no binding."""

    def start(**options: Any) -> Kamailio:
        return kamailio(gateway=gateway.address, username=USER, password=SECRET, require_binding=False, **options)

    return start


def dialer_call(cwd: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DIALER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(DIALER_SIP_USERNAME=USER, DIALER_SIP_REGISTER="false", **variables)
    return subprocess.run([sys.executable, "-c", "from shared.cli import main; main()", "call", NUMBER],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_digest_on_invite_only_trunk_calls_without_register(proxy: Callable[..., Kamailio], tmp_path: Path) -> None:
    """register = false with a password: no REGISTER, each INVITE answers its 407; 404, 404, 200."""
    kam = proxy()
    done = dialer_call(tmp_path, DIALER_SIP_REGISTRAR=kam.address("udp"), DIALER_SIP_PASSWORD=SECRET)
    host = kam.address("udp")
    assert done.stdout.splitlines() == [
        f"REGISTER sip:{host} -> skipped (registration disabled)",
        f"INVITE sip:{NUMBER}@{host} [national] -> 407 -> 100 404 Not Found => not_found",
        f"INVITE sip:86{NUMBER}@{host} [cc] -> 407 -> 100 404 Not Found => not_found",
        f"INVITE sip:+86{NUMBER}@{host} [e164] -> 407 -> 100 180 200 OK => answered",
        "outcome: answered",
    ], done.stderr
    assert kam.contacts() == []  # nothing registered


def test_ip_authenticated_trunk_through_an_outbound_proxy(proxy: Callable[..., Kamailio], tmp_path: Path) -> None:
    """No password, no REGISTER, the trunk's host unresolvable: every INVITE goes to the outbound proxy over TCP."""
    kam = proxy(authenticate_invites=False)
    trunk_host = "carrier.invalid:5060"  # never resolved: the route's first hop is the proxy
    done = dialer_call(tmp_path, DIALER_SIP_REGISTRAR=trunk_host, DIALER_SIP_TRANSPORT="tcp",
                       DIALER_SIP_OUTBOUND_PROXY=kam.address("tcp"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[1:] == [
        f"INVITE sip:{NUMBER}@{trunk_host} [national] -> 100 404 Not Found => not_found",
        f"INVITE sip:86{NUMBER}@{trunk_host} [cc] -> 100 404 Not Found => not_found",
        f"INVITE sip:+86{NUMBER}@{trunk_host} [e164] -> 100 180 200 OK => answered",
        "outcome: answered",
    ]


def test_refused_certificate_consumes_no_job_and_stops_consuming(
    gateway: SippPeer, proxy: Callable[..., Kamailio], tmp_path: Path, db: psycopg.Connection[Any],
    database_url: str, redis_url: str,
) -> None:
    """A TLS trunk whose certificate is not trusted: no try, the attempt given back, the trunk's jobs paused."""
    ca, stranger = TestCa.create(tmp_path / "ca", "carrier"), TestCa.create(tmp_path / "ca", "stranger")
    kam = proxy(tls=[TlsListener("impostor", stranger.issue("impostor", ip="127.0.0.1"))])
    paused: list[str] = []
    try:
        settings = load_settings(
            database_url=database_url, redis_url=redis_url, sip_registrar=kam.address("tls"),
            sip_transport="tls", sip_username=USER, sip_password=SECRET, sip_register=False,
            sip_tls_ca_file=str(ca.cert),
        )
        rt = runtime.start(settings, None, name="test-worker", stop_consuming=lambda: paused.append("stop"))
        campaign = create_campaign(db, ring_timeout_s=3, max_attempts=3)
        [job_id] = add_jobs(db, campaign, [f"+86{NUMBER}"], status="queued")
        before = len(gateway.dialogs())

        run_dial_job(rt, job_id)

        attempts, tries = db.execute(
            "SELECT attempts, (SELECT count(*) FROM call_attempts WHERE job_id = %s) FROM dial_jobs WHERE id = %s",
            (job_id, job_id)).fetchone() or (None, None)
        assert (attempts, tries) == (0, 0)
        assert rt.gate is not None and not rt.gate.is_open
        # The gate closes at once; its thread then tells the broker and flags the trunk: wait for both.
        def trunk_flag() -> tuple[Any, str]:
            return db.execute("SELECT healthy, unhealthy_reason FROM trunks WHERE name = 'default'"
                              ).fetchone() or (None, "")
        wait_until(lambda: paused == ["stop"] and trunk_flag()[0] is False, 5,
                   "the gate to stop the consumer and flag the trunk")
        assert "the trunk's certificate is not trusted" in trunk_flag()[1]
        assert len(gateway.dialogs()) == before
    finally:
        runtime.stop(grace_s=1)
