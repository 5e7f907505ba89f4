"""A trunk with nothing listening at its registrar: the worker survives, burns no job, and recovers by itself."""

from __future__ import annotations

import re
import socket
import subprocess

import pytest

from tests.faults.rig import PASSWORD, USERNAME, FaultRig, Plan, poll, start_campaign, start_dispatchers
from tests.support.fleet import wait_until
from tests.support.private_services import restartable_port
from tests.support.sipp import DEFAULT_KEYS, SCENARIO_DIR, SippPeer, sipp_command

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]

REGISTER_FAILED = "REGISTER to trunk default failed"
TASK_RAN = re.compile(r"Task dialer\.dial\[[^\]]+\] (raised|succeeded)")


def _start_carrier_on(port: int, rig: FaultRig) -> SippPeer:
    """sipp's fault_hold carrier on a port chosen earlier (where the worker's registrar points)."""
    keys = {**DEFAULT_KEYS, "username": USERNAME, "password": PASSWORD}
    peer = SippPeer("fault_hold", port, "udp", rig.workdir / "sipp-late", keys)
    peer.workdir.mkdir(parents=True, exist_ok=True)
    cmd = sipp_command(SCENARIO_DIR / "fault_hold.xml", port, transport="udp", peer=peer, keys=keys,
                       pause_ms=None, timeout_s=120, extra_args=())
    peer.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, cwd=peer.workdir)
    return peer


def test_unreachable_registrar_burns_no_job_and_dials_once_it_answers(rig: FaultRig) -> None:
    """The worker's registrar port has nothing behind it (REGISTER times out), then a carrier appears there.

    Pins, while unregistered: the supervisor and its worker process stay up
    (same pid, no crash loop), no dial task runs (DESIGN.md: "a worker
    consumes dial jobs only while its registration is up"), no INVITE is sent,
    no attempt is recorded and all 5 jobs wait (pending or queued, attempts 0).
    Then: the worker registers by itself and completes all 5, each dialled once.
    """
    # Nothing listens there until the carrier starts: a port no client socket can take meanwhile.
    port = restartable_port(socket.SOCK_DGRAM)
    worker = rig.fleet.start_worker(1, name="workers", env={"DIALER_SIP_REGISTRAR": f"127.0.0.1:{port}"})
    start_dispatchers(rig, requeue_after_s=3.0)
    campaign_id = start_campaign(rig, Plan("dead-registrar", jobs=5))
    wait_until(lambda: REGISTER_FAILED in worker.log_text(), 60, "the first REGISTER to fail")
    [child] = worker.children()
    assert not poll(lambda: TASK_RAN.search(worker.log_text()) is not None, timeout_s=10.0), (
        "a dial task ran in a worker that is not registered")
    assert set(rig.status_counts(campaign_id)) <= {"pending", "queued"}
    assert rig.query("SELECT count(*), coalesce(max(attempts), 0) FROM dial_jobs")[0] == (5, 0)
    assert rig.query("SELECT count(*) FROM call_attempts")[0][0] == 0
    assert worker.alive and worker.children() == [child]

    peer = _start_carrier_on(port, rig)
    try:
        rig.wait_settled(campaign_id, 90, statuses=("completed",))
        assert sorted(d.user for d in peer.dialogs()) == sorted(f"1390000000{i}" for i in range(5))
    finally:
        peer.stop()
    assert worker.children() == [child]
