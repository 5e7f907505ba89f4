"""``dialer call`` end to end: the real command in a subprocess, a sipp trunk on loopback.

The done-criterion of the diagnostic: against a PBX that wants digest auth on
REGISTER and INVITE and routes only +86 numbers, the ladder shows every
response pjsua handled (REGISTER 401 -> 200; each INVITE's 407, then 404,
404, and 100 180 200 for +86) and the outcome. The command runs with only
the DIALER_SIP_* variables set: no database, no Redis, no config file, in an
empty working directory that must stay empty (no embedded service started).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.sipp import DEFAULT_KEYS, SippPeer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
USER = DEFAULT_KEYS["username"]
SECRET = DEFAULT_KEYS["password"]
WRONG_SECRET = "wrong-fake-secret"
NUMBER = "13900001111"  # fictional
Sipp = Callable[..., SippPeer]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty working directory for the command (sipp writes its traces next to it, not in it)."""
    path = tmp_path / "cwd"
    path.mkdir()
    return path


def dialer(
    workdir: Path, *args: str, peer: SippPeer | None = None, password: str = SECRET
) -> subprocess.CompletedProcess[str]:
    """Run ``dialer <args>`` as an operator would, with no DIALER_* setting but the trunk's."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DIALER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if peer is not None:
        env.update(DIALER_SIP_REGISTRAR=peer.address, DIALER_SIP_USERNAME=USER, DIALER_SIP_PASSWORD=password)
    return subprocess.run(
        [sys.executable, "-c", "from shared.cli import main; main()", *args],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=90, check=False,
    )


def test_ladder_shows_every_challenge_and_variant(sipp_uas: Sipp, workdir: Path) -> None:
    """401 -> 200 on REGISTER, 407 before each INVITE's answer, national and 86 404, +86 answered, exit 0."""
    peer = sipp_uas("carrier")
    done = dialer(workdir, "call", NUMBER, peer=peer)
    host = peer.address
    assert done.stdout.splitlines() == [
        f"REGISTER sip:{host} -> 401 -> 200 OK",
        f"INVITE sip:{NUMBER}@{host} [national] -> 407 -> 404 Not Found => not_found",
        f"INVITE sip:86{NUMBER}@{host} [cc] -> 407 -> 404 Not Found => not_found",
        f"INVITE sip:+86{NUMBER}@{host} [e164] -> 407 -> 100 180 200 OK => answered",
        "outcome: answered",
    ], done.stderr
    assert done.returncode == 0
    assert {d.user: d.final_status for d in peer.dialogs()} == {NUMBER: 404, f"86{NUMBER}": 404, f"+86{NUMBER}": 200}
    assert SECRET not in done.stdout + done.stderr
    assert list(workdir.iterdir()) == []  # no embedded Postgres or Redis was needed


def test_json_carries_the_same_ladder(sipp_uas: Sipp, workdir: Path) -> None:
    """--json: one object with the registration's and each attempt's challenges, provisional, status."""
    peer = sipp_uas("carrier")
    done = dialer(workdir, "call", NUMBER, "--json", peer=peer)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    reg = report["registration"]
    assert (reg["registrar"], reg["status"], reg["reason"], reg["registered"], reg["challenges"]) == (
        f"sip:{peer.address}", 200, "OK", True, [401]
    )
    attempts = report["attempts"]
    assert [(a["variant"], a["challenges"], a["status"], a["outcome"]) for a in attempts] == [
        ("national", [407], 404, "not_found"),
        ("cc", [407], 404, "not_found"),
        ("e164", [407], 200, "answered"),
    ]
    assert [a["provisional"] for a in attempts] == [[], [], [100, 180]]
    assert [a["call_id"] for a in attempts] == [d.call_id for d in peer.dialogs()]
    assert report["outcome"] == "answered"
    assert SECRET not in done.stdout + done.stderr


def test_wrong_password_is_auth_failed_and_never_shown(sipp_uas: Sipp, workdir: Path) -> None:
    """REGISTER 401 -> 403: outcome auth_failed, no INVITE, non-zero exit, the password in no output."""
    peer = sipp_uas("carrier")
    done = dialer(workdir, "call", NUMBER, peer=peer, password=WRONG_SECRET)
    lines = done.stdout.splitlines()
    assert lines[0] == f"REGISTER sip:{peer.address} -> 401 -> 403 Forbidden"
    assert lines[-1].startswith("outcome: auth_failed")
    assert done.returncode != 0
    assert peer.received("INVITE") == []
    assert WRONG_SECRET not in done.stdout + done.stderr


def test_busy_peer_is_busy_and_not_dialled_again(sipp_uas: Sipp, workdir: Path) -> None:
    """486 to the first variant: outcome busy, the other variants untried, non-zero exit."""
    peer = sipp_uas("busy_486")
    done = dialer(workdir, "call", NUMBER, peer=peer)
    assert done.stdout.splitlines() == [
        f"REGISTER sip:{peer.address} -> 200 OK",
        f"INVITE sip:{NUMBER}@{peer.address} [national] -> 100 486 Busy Here => busy",
        "outcome: busy",
    ], done.stderr
    assert done.returncode != 0
    assert len(peer.received("INVITE")) == 1


def test_help_needs_no_configuration(workdir: Path) -> None:
    """``dialer call --help`` works with nothing configured and names the options an operator needs."""
    done = dialer(workdir, "call", "--help")
    assert done.returncode == 0, done.stderr
    for option in ("NUMBER", "--trunk", "--ring-timeout", "--hold", "--json"):
        assert option in done.stdout
