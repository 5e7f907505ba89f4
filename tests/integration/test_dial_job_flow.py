"""The dial job running a campaign's flow end to end: pjsua2, a sipp carrier, Postgres, Redis.

The campaign is created through producer.campaigns with a flow file (its WAV
stored in ``prompts``); the job's upload columns fill a say text rendered by
espeak-ng on first use. The CDR row gets the flow log and the business
outcome; a prompt missing everywhere places no call; a call longer than its
claim's lease keeps the lease renewed while the reaper runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from producer import reaper
from producer.campaigns import CampaignSpec, FlowSpec, create_campaign
from shared.settings import load_settings
from tests.support.factories import add_jobs
from tests.support.flows import write_flow
from tests.support.sipp import DEFAULT_KEYS, SippPeer
from worker import job_runner, lease, runtime
from worker.flow_job import OptOutWriter
from worker.job_runner import run_dial_job
from worker.runtime import WorkerRuntime

pytestmark = pytest.mark.integration
Conn = psycopg.Connection[Any]
NUMBER = "+8613900001111"  # fictional
RuntimeFactory = Callable[[SippPeer], WorkerRuntime]
FLOW = """
start = "offer"

[steps.offer]
play = "offer.wav"
next = "hello"

[steps.hello]
say = "Hello {name}."
next = "bye"

[steps.bye]
hangup = true
"""


@pytest.fixture
def worker_runtime(database_url: str, redis_url: str, redis_client: Any, tmp_path: Path) -> Iterator[RuntimeFactory]:
    def start(peer: SippPeer) -> WorkerRuntime:
        settings = load_settings(
            database_url=database_url, redis_url=redis_url, sip_registrar=peer.address,
            sip_username=DEFAULT_KEYS["username"], sip_password=DEFAULT_KEYS["password"],
            data_dir=tmp_path / "worker-data",
        )
        return runtime.start(settings, None, name="test-worker", register_attempts=1)

    yield start
    runtime.stop(grace_s=2)


def queue_flow_job(db: Conn, folder: Path, text: str = FLOW, *, wav_s: float = 1.0) -> tuple[int, int]:
    spec = CampaignSpec("flows", "default", ring_timeout_s=3, flow=FlowSpec.from_file(write_flow(folder, text,
                                                                                             wav_s=wav_s)))
    campaign_id = create_campaign(db, spec)
    db.execute("UPDATE campaigns SET state = 'running' WHERE id = %s", (campaign_id,))
    [job_id] = add_jobs(db, campaign_id, [NUMBER], status="queued")
    db.execute("UPDATE dial_jobs SET due_at = now(), queued_at = now(), metadata = %s WHERE id = %s",
               (Jsonb({"name": "Li Lei", "phone": NUMBER}), job_id))
    return campaign_id, job_id


def test_a_flow_job_records_its_steps_and_business_outcome(
    db: Conn, sipp_uas: Callable[..., SippPeer], worker_runtime: RuntimeFactory, tmp_path: Path
) -> None:
    """Answered: the WAV and the rendered greeting play, the flow hangs up; CDR says message_played with its log."""
    _, job_id = queue_flow_job(db, tmp_path / "flow")
    rt = worker_runtime(sipp_uas("carrier"))
    assert run_dial_job(rt, job_id) == "message_played"
    status, outcome = db.execute("SELECT status, outcome FROM dial_jobs WHERE id = %s", (job_id,)).fetchone() or ()
    assert (status, outcome) == ("completed", "message_played")
    steps, first_audio, outcome = db.execute(
        "SELECT flow_steps, first_audio_s, outcome FROM call_attempts WHERE job_id = %s AND status_code = 200",
        (job_id,)).fetchone() or ()
    assert [(s["step"], s["result"]) for s in steps] == [("offer", "played"), ("hello", "played"), ("bye", "hangup")]
    assert steps[0]["played_s"] == pytest.approx(1.0, abs=0.1) and first_audio is not None and first_audio < 2
    assert outcome == "message_played"
    said = db.execute("SELECT text FROM prompts WHERE kind = 'say'").fetchall()
    assert said == [("Hello Li Lei.",)]  # rendered once, stored for the fleet
    assert len(list((tmp_path / "worker-data" / "prompts").glob("*.wav"))) == 2


def test_a_prompt_missing_everywhere_places_no_call(
    db: Conn, sipp_uas: Callable[..., SippPeer], worker_runtime: RuntimeFactory, tmp_path: Path
) -> None:
    """The WAV is gone from prompts and the host cache: no INVITE, the job waits uncounted, the campaign says why."""
    campaign_id, job_id = queue_flow_job(db, tmp_path / "flow")
    db.execute("DELETE FROM prompts")
    peer = sipp_uas("carrier")
    rt = worker_runtime(peer)
    assert run_dial_job(rt, job_id) == "prompt_unavailable"
    assert db.execute("SELECT status, attempts, outcome FROM dial_jobs WHERE id = %s",
                      (job_id,)).fetchone() == ("pending", 0, None)
    assert db.execute("SELECT count(*) FROM call_attempts").fetchone() == (0,)
    [reason] = db.execute("SELECT flagged_reason FROM campaigns WHERE id = %s", (campaign_id,)).fetchone() or ()
    assert "no call placed" in reason and "step 'offer'" in reason
    assert peer.received("INVITE") == []


def test_a_call_longer_than_its_lease_is_renewed_and_never_reaped(
    db: Conn, database_url: str, sipp_uas: Callable[..., SippPeer], worker_runtime: RuntimeFactory,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Claim lease ~4 s, a 6 s flow, a reaper with no grace running all along: no worker_lost, the real outcome."""
    monkeypatch.setattr(job_runner, "LEASE_EXTRA_S", 1.0)
    monkeypatch.setattr(lease, "LEASE_TTL_S", 2.0)
    monkeypatch.setattr(lease, "RENEW_EVERY_S", 0.5)
    text = FLOW.replace('next = "bye"', 'next = "wait"') + '\n[steps.wait]\npause = 6\nnext = "bye"\n'
    _, job_id = queue_flow_job(db, tmp_path / "flow", text)
    rt = worker_runtime(sipp_uas("carrier"))
    stop = threading.Event()
    lost: list[Any] = []

    def reap() -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            while not stop.wait(0.2):
                lost.extend(reaper.reap_lost(conn, reaper.ReaperConfig(lease_grace_s=0.0)))

    thread = threading.Thread(target=reap)
    thread.start()
    try:
        assert run_dial_job(rt, job_id) == "message_played"
    finally:
        stop.set()
        thread.join()
    assert lost == []
    assert db.execute("SELECT count(*) FROM call_attempts WHERE outcome = 'worker_lost'").fetchone() == (0,)


def test_an_opt_out_lists_the_number_fleet_wide_at_once(db: Conn, database_url: str) -> None:
    """The writer puts the number on the DNC list and skips its waiting jobs in every campaign, from its thread."""
    from psycopg_pool import ConnectionPool

    other = db.execute("INSERT INTO campaigns (name, trunk, state) VALUES ('other', 't', 'running') RETURNING id"
                       ).fetchone()
    assert other is not None
    add_jobs(db, int(other[0]), [NUMBER])
    with ConnectionPool(database_url, min_size=1, max_size=2, kwargs={"autocommit": True}) as pool:
        writer = OptOutWriter(pool, NUMBER, "flows")
        writer.submit()
        writer.wait()
    assert writer.written
    assert db.execute("SELECT reason FROM dnc WHERE e164 = %s", (NUMBER,)).fetchone() == (
        "opted out during a call (campaign flows)",)
    assert db.execute("SELECT status FROM dial_jobs").fetchone() == ("skipped_dnc",)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Any]:
    from sandbox import SandboxPbx, load_plan

    pbx = SandboxPbx(load_plan(), port=0)
    pbx.start()
    yield pbx
    pbx.stop()


@pytest.mark.parametrize(("number", "outcome", "transfer_status"), [
    ("+8613900007009", "opted_out", None),
    ("+8613900007002", "transferred", 200),
])
def test_callees_that_act_on_the_demo_flow(
    db: Conn, database_url: str, redis_url: str, redis_client: Any, sandbox: Any, tmp_path: Path,
    number: str, outcome: str, transfer_status: int | None,
) -> None:
    """Against the sandbox PBX: a 9 puts the number on the DNC list during the call; a 1 is REFERred with 200."""
    from producer.demo_flow import write_demo_flow
    from sandbox import load_plan

    user = load_plan().users[0]
    spec = CampaignSpec("acting", "default", ring_timeout_s=5,
                        flow=FlowSpec.from_file(write_demo_flow(tmp_path / "flow", sandbox.port)))
    campaign_id = create_campaign(db, spec)
    db.execute("UPDATE campaigns SET state = 'running' WHERE id = %s", (campaign_id,))
    [job_id] = add_jobs(db, campaign_id, [number], status="queued")
    db.execute("UPDATE dial_jobs SET due_at = now(), queued_at = now(), metadata = %s WHERE id = %s",
               (Jsonb({"name": "Trent"}), job_id))
    settings = load_settings(database_url=database_url, redis_url=redis_url, sip_registrar=f"127.0.0.1:{sandbox.port}",
                             sip_username=user.username, sip_password=user.password, data_dir=tmp_path / "data")
    rt = runtime.start(settings, None, name="test-worker", register_attempts=1)
    try:
        assert run_dial_job(rt, job_id) == outcome
    finally:
        runtime.stop(grace_s=2)
    digits, status, target = db.execute(
        "SELECT digits, transfer_status, transfer_target FROM call_attempts WHERE job_id = %s AND status_code = 200",
        (job_id,)).fetchone() or ()
    assert digits == ("9" if outcome == "opted_out" else "1") and status == transfer_status
    listed = db.execute("SELECT count(*) FROM dnc WHERE e164 = %s", (number,)).fetchone()
    assert listed == ((1,) if outcome == "opted_out" else (0,))
    if transfer_status:
        assert target == f"sip:advisors@127.0.0.1:{sandbox.port}"


def test_a_recorded_call_puts_the_recording_in_the_cdr(
    db: Conn, sipp_uas: Callable[..., SippPeer], worker_runtime: RuntimeFactory, tmp_path: Path
) -> None:
    """record = "call" runs beside the prompt; once the WAV is whole its path is the CDR's recording."""
    import wave

    text = 'start = "rec"\n[steps.rec]\nrecord = "call"\nmax_s = 10\nnext = "offer"\n' + FLOW.split("\n", 2)[2]
    _, job_id = queue_flow_job(db, tmp_path / "flow", text)
    rt = worker_runtime(sipp_uas("carrier"))
    assert run_dial_job(rt, job_id) == "message_played"
    steps, recording = db.execute(
        "SELECT flow_steps, recording FROM call_attempts WHERE job_id = %s AND status_code = 200", (job_id,)
    ).fetchone() or ()
    assert [(s["step"], s["result"]) for s in steps if s["step"] == "rec"] == [("rec", "started"), ("rec", "recorded")]
    assert recording.startswith(str(tmp_path / "worker-data" / "recordings"))
    with wave.open(recording, "rb") as wav:
        assert wav.getnframes() / wav.getframerate() > 1.0  # the prompt, heard in the mix
