"""A registration lost after start-up: the worker stops consuming, burns no job, and resumes by itself.

The registrar is a sipp ``carrier`` (digest REGISTER, +86 answered) on a port
below the ephemeral range, with 5 s registrations so pjsua refreshes every
few seconds. Mid-campaign it disappears (its process stopped), or comes back
refusing our credentials (403 on refresh); later it returns as it was.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.faults.rig import PASSWORD, USERNAME, FaultRig, Plan, start_campaign, start_dispatchers
from tests.support.fleet import ManagedProcess, wait_until
from tests.support.private_services import restartable_port
from tests.support.sipp import DEFAULT_KEYS, SCENARIO_DIR, SippPeer, _port_in_use, sipp_command

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

# Commands that consuming the dial queue costs (a consume/reject loop would be made of these).
CONSUME_COMMANDS = ("brpop", "lpush", "rpush", "hset", "hdel", "zadd", "zrem", "lrem", "multi", "exec")


class Registrar:
    """sipp's carrier on one fixed port, stopped and started again there (with another password if asked)."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        self.peers: list[SippPeer] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, password: str = PASSWORD) -> SippPeer:
        keys = {**DEFAULT_KEYS, "username": USERNAME, "password": password, "reg_expires": "5"}
        peer = SippPeer("carrier", self.port, "udp", self.workdir / f"run{len(self.peers)}", keys)
        peer.workdir.mkdir(parents=True, exist_ok=True)
        cmd = sipp_command(SCENARIO_DIR / "carrier.xml", self.port, transport="udp", peer=peer, keys=keys,
                           pause_ms=None, timeout_s=240, extra_args=())
        peer.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, cwd=peer.workdir)
        self.peers.append(peer)
        wait_until(lambda: _port_in_use(self.port, "udp"), 10, "the registrar to listen", interval_s=0.05)
        return peer

    def stop(self) -> None:
        for peer in self.peers:
            peer.stop()

    def registers_answered(self, status: int) -> int:
        return sum(1 for peer in self.peers for m in peer.messages()
                   if m.direction == "tx" and m.status == status and m.cseq_method == "REGISTER")


@pytest.fixture
def registrar(tmp_path: Path) -> Iterator[Registrar]:
    reg = Registrar(restartable_port(socket.SOCK_DGRAM), tmp_path / "registrar")
    yield reg
    reg.stop()


def scrape(worker: ManagedProcess, path: str = "/metrics") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.metrics_port}{path}", timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def consume_rate(rig: FaultRig, seconds: float) -> tuple[float, float]:
    """(queue-consuming commands/s, all commands/s) over ``seconds``, from Redis's INFO commandstats."""
    client = redis.Redis.from_url(rig.redis.url(), socket_timeout=5)

    def counts() -> dict[str, int]:
        stats = client.info("commandstats")
        return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    try:
        before = counts()
        time.sleep(seconds)  # the measurement window itself
        after = counts()
    finally:
        client.close()
    delta = {name: after[name] - before.get(name, 0) for name in after}
    consuming = sum(v for name, v in delta.items() if name in CONSUME_COMMANDS)
    return consuming / seconds, (sum(delta.values()) - 2) / seconds  # less our own two INFO calls


def _campaign(rig: FaultRig, registrar: Registrar, name: str) -> tuple[ManagedProcess, int]:
    worker = rig.fleet.start_worker(1, name="workers", env={"DIALER_SIP_REGISTRAR": registrar.address})
    wait_until(lambda: scrape(worker, "/healthz")[0] == 200, 60, "the worker to be registered and consuming")
    start_dispatchers(rig)
    campaign_id = start_campaign(rig, Plan(name, jobs=16, cps=2.0, max_attempts=5))
    wait_until(lambda: rig.status_counts(campaign_id).get("completed", 0) >= 3, 90, "the campaign under way")
    return worker, campaign_id


def _assert_quiet_while_unregistered(rig: FaultRig, worker: ManagedProcess) -> None:
    wait_until(lambda: metric(scrape(worker)[1], "dialer_registration_up") == 0, 60, "registration_up to drop")
    status, body = scrape(worker, "/healthz")
    assert status == 503 and not json.loads(body)["healthy"], body
    time.sleep(2.0)  # let calls placed just before the loss end, and their requeues settle
    consuming, everything = consume_rate(rig, 5.0)
    print(f"while unregistered: {consuming:.1f} queue commands/s, {everything:.1f} commands/s in all")
    assert consuming < 20, f"{consuming:.1f} queue commands/s while unregistered: a consume/reject loop"


def _assert_nothing_burned(rig: FaultRig, worker: ManagedProcess, campaign_id: int) -> None:
    try:
        rig.wait_settled(campaign_id, 180, statuses=("completed",))
    except TimeoutError:
        outcomes = rig.query("SELECT j.id, j.status, j.attempts, array_agg(a.outcome ORDER BY a.attempt, a.try_index)"
                             " FROM dial_jobs j LEFT JOIN call_attempts a ON a.job_id = j.id"
                             " WHERE j.status <> 'completed' GROUP BY j.id")
        raise AssertionError(f"not all completed: {outcomes}") from None
    bad = rig.query("SELECT count(*) FROM call_attempts WHERE outcome IN ('auth_failed', 'worker_lost')")[0][0]
    assert bad == 0
    assert rig.query("SELECT count(*) FROM dial_jobs WHERE status <> 'completed'")[0][0] == 0
    assert metric(scrape(worker)[1], "dialer_registration_up") == 1
    assert scrape(worker, "/healthz")[0] == 200


def test_registrar_gone_mid_campaign_pauses_the_worker_and_dialling_resumes_by_itself(
    rig: FaultRig, registrar: Registrar
) -> None:
    """The registrar's process stops mid-campaign and comes back 10 s later on the same port.

    Pins: the refresh fails and the worker stops consuming (under 20 queue
    commands/s in Redis, not a consume/reject loop), dialer_registration_up
    goes 0 and /healthz 503; once the registrar is back the worker registers
    by itself and every job completes; no attempt ends auth_failed or
    worker_lost and no job is left failed because of the outage.
    """
    registrar.start()
    worker, campaign_id = _campaign(rig, registrar, "reg-gone")
    registrar.stop()
    _assert_quiet_while_unregistered(rig, worker)
    errors = metric(scrape(worker)[1], "dialer_registrations_total", result="error")
    assert errors >= 1
    registrar.start()
    _assert_nothing_burned(rig, worker, campaign_id)


def test_403_on_refresh_pauses_the_worker_counts_the_auth_failure_and_resumes_once_accepted(
    rig: FaultRig, registrar: Registrar
) -> None:
    """The registrar comes back refusing our digest (403 on refresh), then accepts it again.

    Pins: the worker stops consuming (quiet Redis), the auth_failed REGISTER
    counter rises (what TrunkAuthFailures fires on), the gate retries REGISTER
    by itself with its slower auth backoff and, once accepted, every job
    completes with nothing burned.
    """
    registrar.start()
    worker, campaign_id = _campaign(rig, registrar, "reg-403")
    registrar.stop()
    registrar.start(password="not-the-password-we-have")
    wait_until(lambda: registrar.registers_answered(403) >= 1, 30, "a refresh answered 403")
    _assert_quiet_while_unregistered(rig, worker)
    assert metric(scrape(worker)[1], "dialer_registrations_total", result="auth_failed") >= 1
    assert metric(scrape(worker)[1], "dialer_register_responses_total", code="403") >= 1
    registrar.stop()
    registrar.start()
    _assert_nothing_burned(rig, worker, campaign_id)


def test_healthz_says_not_registered_until_the_registrar_answers(rig: FaultRig, registrar: Registrar) -> None:
    """A worker host whose registrar is not up yet: /metrics answers (the process is alive) but /healthz is
    503 naming the process "not registered"; once the registrar answers, 200 "registered and consuming"."""
    worker = rig.fleet.start_worker(2, name="workers", env={"DIALER_SIP_REGISTRAR": registrar.address})

    def not_registered() -> bool:
        status, body = scrape(worker, "/healthz")
        return status == 503 and [w["state"] for w in json.loads(body)["workers"].values()] == ["not registered"] * 2
    wait_until(not_registered, 60, "both processes to report 'not registered'")
    assert scrape(worker)[0] == 200
    registrar.start()
    wait_until(lambda: scrape(worker, "/healthz")[0] == 200, 90, "/healthz to turn 200")
    body = json.loads(scrape(worker, "/healthz")[1])
    assert body["healthy"] and {w["state"] for w in body["workers"].values()} == {"registered and consuming"}
