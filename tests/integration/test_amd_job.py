"""A dial job whose campaign flow starts with ``amd``: the CDR row and the job follow the verdict.

baresip answers with a corpus voicemail greeting over RTP/G.711; the real
worker runs the campaign's flow. With a ``voicemail_drop`` the attempt is
``voicemail_left`` and the job is completed; with a machine branch that only
hangs up it is ``machine`` and the job waits two hours to try again. Either
way the CDR row carries the amd entry in its flow log and the
``amd_decision``/``amd_reason``/``amd_decided_at_s`` columns.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from producer.campaigns import CampaignSpec, FlowSpec, create_campaign
from shared.settings import load_settings
from tests.support.amd_phone import ITEMS, answering_phone
from tests.support.baresip import BaresipCallee, write_tone
from tests.support.factories import add_jobs
from worker import runtime
from worker.job_runner import run_dial_job
from worker.runtime import WorkerRuntime

pytestmark = pytest.mark.integration
Conn = psycopg.Connection[Any]
NUMBER = "+8613900001111"  # fictional
DROP_FLOW = """
start = "detect"
[steps.detect]
amd = {}
branches = { human = "offer", machine = "drop" }
[steps.offer]
play = "offer.wav"
[steps.drop]
voicemail_drop = true
play = "message.wav"
"""
HANGUP_FLOW = """
start = "detect"
[steps.detect]
amd = { greeting_ms = 1500 }
branches = { human = "offer", machine = "bye" }
[steps.offer]
play = "offer.wav"
[steps.bye]
hangup = true
"""


@pytest.fixture
def voicemail(tmp_path: Path) -> Iterator[BaresipCallee]:
    callee = answering_phone(tmp_path / "baresip", ITEMS["voicemail"])
    yield callee
    with contextlib.suppress(Exception):
        callee.stop()


@pytest.fixture
def worker_for(database_url: str, redis_url: str, redis_client: Any,
               tmp_path: Path) -> Iterator[Callable[[BaresipCallee], WorkerRuntime]]:
    def start(callee: BaresipCallee) -> WorkerRuntime:
        settings = load_settings(database_url=database_url, redis_url=redis_url, sip_registrar=callee.address,
                                 sip_register=False, sip_username="dialer", sip_variant_order="+86",
                                 data_dir=tmp_path / "worker-data")
        return runtime.start(settings, None, name="amd-worker", register_attempts=1)

    yield start
    runtime.stop(grace_s=2)


def queue(db: Conn, folder: Path, text: str) -> int:
    folder.mkdir(parents=True)
    write_tone(folder / "offer.wav", 1.0, 440.0)
    write_tone(folder / "message.wav", 1.5, 600.0)
    (folder / "flow.toml").write_text(text, encoding="utf-8")
    spec = CampaignSpec("amd", "default", ring_timeout_s=5, flow=FlowSpec.from_file(folder / "flow.toml"))
    campaign_id = create_campaign(db, spec)
    db.execute("UPDATE campaigns SET state = 'running' WHERE id = %s", (campaign_id,))
    [job_id] = add_jobs(db, campaign_id, [NUMBER], status="queued")
    db.execute("UPDATE dial_jobs SET due_at = now(), queued_at = now(), metadata = %s WHERE id = %s",
               (Jsonb({"name": "Li Lei"}), job_id))
    return job_id


def cdr(db: Conn, job_id: int) -> tuple[Any, ...]:
    return db.execute(
        "SELECT outcome, amd_decision, amd_reason, amd_decided_at_s, flow_steps FROM call_attempts"
        " WHERE job_id = %s AND status_code = 200", (job_id,)).fetchone() or ()


def test_a_message_left_on_the_box_completes_the_job(
    db: Conn, voicemail: BaresipCallee, worker_for: Callable[[BaresipCallee], WorkerRuntime], tmp_path: Path
) -> None:
    """machine -> voicemail_drop: outcome voicemail_left (final), the verdict in its columns and in the log."""
    job_id = queue(db, tmp_path / "flow", DROP_FLOW)
    assert run_dial_job(worker_for(voicemail), job_id) == "voicemail_left"
    assert db.execute("SELECT status, outcome FROM dial_jobs WHERE id = %s", (job_id,)).fetchone() == (
        "completed", "voicemail_left")
    outcome, decision, reason, decided_at, steps = cdr(db, job_id)
    assert (outcome, decision) == ("voicemail_left", "machine") and reason and 0 < decided_at <= 5.0
    assert [(s["action"], s["result"]) for s in steps] == [("amd", "machine"), ("voicemail_drop", "played")]
    assert steps[0]["decided_at_s"] == pytest.approx(decided_at, abs=0.01) and steps[1]["heard"] == "beep"


def test_a_machine_without_a_message_is_tried_again_later(
    db: Conn, voicemail: BaresipCallee, worker_for: Callable[[BaresipCallee], WorkerRuntime], tmp_path: Path
) -> None:
    """machine -> hang up: outcome machine, the job back in retry_wait about two hours later."""
    job_id = queue(db, tmp_path / "flow", HANGUP_FLOW)
    assert run_dial_job(worker_for(voicemail), job_id) == "machine"
    status, outcome, wait = db.execute(
        "SELECT status, outcome, next_attempt_at - now() FROM dial_jobs WHERE id = %s", (job_id,)).fetchone() or ()
    assert (status, outcome) == ("retry_wait", "machine")
    assert timedelta(hours=1, minutes=55) <= wait <= timedelta(hours=2)
    assert cdr(db, job_id)[:2] == ("machine", "machine")
