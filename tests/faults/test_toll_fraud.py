"""Toll-fraud guard: a campaign dials only numbers of its allowed regions and types, checked twice.

Once at upload (the upload engineer's ``ingest_bytes``) and again right
before the INVITE, so a job that reached the table another way (a bug, a
hand-written INSERT, a campaign whose policy was tightened) is still refused.
Numbers are phonenumbers' own example numbers for each type, not anyone's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import phonenumbers
import psycopg
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from producer.campaigns import CampaignSpec, create_campaign
from producer.upload import ingest_bytes
from shared.settings import load_settings
from tests.faults.rig import PASSWORD, USERNAME, fictional_numbers
from tests.support.sipp import SippPeer
from worker import runtime
from worker.job_runner import run_dial_job
from worker.runtime import WorkerRuntime

pytestmark = [pytest.mark.integration]


def example(region: str, kind: Any) -> str:
    number = phonenumbers.example_number_for_type(region, kind)
    assert number is not None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


FORBIDDEN = {
    "premium-rate": example("CN", PhoneNumberType.PREMIUM_RATE),
    "shared-cost": example("CN", PhoneNumberType.SHARED_COST),
    "foreign premium": example("GB", PhoneNumberType.PREMIUM_RATE),
    "out-of-region mobile": example("HK", PhoneNumberType.MOBILE),
    "out-of-region US": example("US", PhoneNumberType.FIXED_LINE_OR_MOBILE),
}


def test_upload_rejects_premium_shared_cost_and_out_of_region(db: psycopg.Connection[Any], tmp_path: Path) -> None:
    """A CN campaign (mobile and fixed line only) takes its two fictional mobiles and rejects every forbidden row."""
    create_campaign(db, CampaignSpec(name="guarded", trunk="default"))
    good = fictional_numbers(2)
    csv = "phone\n" + "\n".join([*good, *FORBIDDEN.values()]) + "\n"
    summary = ingest_bytes(db, "guarded", csv.encode(), "leads.csv", data_dir=tmp_path)
    assert (summary.accepted, summary.rejected) == (2, len(FORBIDDEN))
    stored = sorted(row[0] for row in db.execute("SELECT e164 FROM dial_jobs"))
    assert stored == good
    reasons = [row[0] for row in db.execute("SELECT reason FROM upload_rejects ORDER BY row_number")]
    assert any("toll-fraud" in r for r in reasons) and any("allowed regions" in r for r in reasons), reasons


@pytest.fixture
def guarded_worker(database_url: str, redis_url: str, redis_client: Any, sipp_uas: Any) -> Iterator[
        tuple[WorkerRuntime, SippPeer]]:
    peer = sipp_uas("answer_fast")
    settings = load_settings(database_url=database_url, redis_url=redis_url, sip_registrar=peer.address,
                             sip_username=USERNAME, sip_password=PASSWORD)
    yield runtime.start(settings, None, name="guard-worker", register_attempts=1), peer
    runtime.stop(grace_s=2)


def test_worker_refuses_forbidden_numbers_inserted_behind_the_uploads_back(
    db: psycopg.Connection[Any], guarded_worker: tuple[WorkerRuntime, SippPeer]
) -> None:
    """Jobs INSERTed straight into dial_jobs for forbidden numbers are claimed, refused and failed: no INVITE.

    A fictional CN mobile queued the same way is dialled, so the refusal is
    the guard's, not a broken worker's.
    """
    rt, peer = guarded_worker
    campaign = create_campaign(db, CampaignSpec(name="guarded", trunk="default", ring_timeout_s=2))
    db.execute("UPDATE campaigns SET state = 'running' WHERE id = %s", (campaign,))
    numbers = [*FORBIDDEN.values(), fictional_numbers(1)[0]]
    ids = [row[0] for row in (db.execute(
        "INSERT INTO dial_jobs (campaign_id, e164, status, queued_at) VALUES (%s, %s, 'queued', now()) RETURNING id",
        (campaign, number)).fetchone() for number in numbers) if row is not None]
    got = [run_dial_job(rt, job_id) for job_id in ids]
    assert got == ["refuse"] * len(FORBIDDEN) + ["answered"]
    rows = db.execute("SELECT status, outcome, attempts FROM dial_jobs WHERE id = ANY(%s) ORDER BY id",
                      (ids[:-1],)).fetchall()
    assert rows == [("failed", "invalid_number", 0)] * len(FORBIDDEN)
    assert db.execute("SELECT count(*) FROM call_attempts WHERE job_id = ANY(%s)", (ids[:-1],)).fetchone() == (0,)
    assert [d.user for d in peer.dialogs()] == ["13900000000"]
