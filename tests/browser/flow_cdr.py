"""An answered call's CDR written as a worker writes it: a flow report through flow_facts, with_flow, store.finish.

The report has the shape of ``FlowScript.report()`` (worker/flow_runner.py)
for the README's flow: the offer played, 1 pressed, the call recorded and
transferred. The recording file is a real WAV under ``recordings/`` of the
given data folder, named as the runner names it (``<uuid hex>-<step>.wav``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from shared.job_states import JobStatus
from shared.outcomes import Outcome
from shared.retry_policy import JobDecision
from tests.support.flows import tone_wav
from worker import store
from worker.flow_job import flow_facts, with_flow


def flow_report(recording: str | None) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [
        {"step": "offer", "action": "play", "result": "played", "at_s": 3.12, "played_s": 3.1},
        {"step": "menu", "action": "gather", "result": "digits", "at_s": 5.4, "digits": "1"},
        {"step": "keep", "action": "record", "result": "started", "at_s": 5.4},
        {"step": "agent", "action": "transfer", "result": "transferred", "at_s": 7.9, "status": 200,
         "target": "sip:advisors@127.0.0.1:5060"},
    ]
    if recording is not None:
        steps.append({"step": "keep", "action": "record", "result": "saved", "at_s": 8.0, "path": recording})
    return {"steps": steps, "outcome": "transferred", "ended_by": "transferred", "first_audio_s": 0.042,
            "digits": "1", "transfer_target": "sip:advisors@127.0.0.1:5060", "transfer_status": 200,
            "recording": recording,
            "amd": {"decision": "human", "reason": "human", "decided_at_s": 1.9, "detail": "speech 0.8 s"}}


def write_recording(data_dir: Path, step: str = "keep") -> Path:
    """A WAV where the worker's FlowScript puts one: DIALER_DATA_DIR/recordings/<uuid hex>-<step>.wav."""
    folder = data_dir / "recordings"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}-{step}.wav"
    path.write_bytes(tone_wav(0.5))
    return path


def answered_with_flow(conn: psycopg.Connection[Any], job_id: int, recording: str | None,
                       worker: str = "worker-web-test") -> store.ClaimedJob:
    """Claim the queued job and finish it with one answered try carrying the flow's columns."""
    job = store.claim(conn, job_id, worker, extra_s=30)
    assert job is not None, f"job {job_id} is not queued"
    at = datetime.now(UTC)
    row = store.TryRow(
        try_index=0, variant="e164", uri="sip:+8613900005555@127.0.0.1", call_id=f"web-{uuid.uuid4().hex}",
        status=200, reason="OK", provisional=[{"code": 180, "at": at.isoformat()}], invite_at=at,
        first_provisional_at=at, answer_at=at + timedelta(seconds=1), end_at=at + timedelta(seconds=10),
        duration_s=9.0, hangup_by="remote", outcome=Outcome.ANSWERED,
    )
    facts = flow_facts(flow_report(recording), Outcome.ANSWERED)
    decision = JobDecision(JobStatus.COMPLETED, facts.outcome, None)
    assert store.finish(conn, job, worker, [with_flow(row, facts)], decision)
    return job
