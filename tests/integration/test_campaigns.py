"""Campaigns against real Postgres: options checked, state machine enforced, status reported."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from producer.campaigns import (
    CampaignNotFound,
    CampaignSpec,
    IllegalTransition,
    campaign_status,
    change_state,
    create_campaign,
    get_campaign,
    list_campaigns,
)
from shared.errors import ConfigError
from shared.outcomes import Outcome
from tests.support.factories import add_jobs, fictional_numbers

pytestmark = pytest.mark.integration


def test_create_stores_a_draft_with_normalised_options(db: psycopg.Connection[Any]) -> None:
    """Options are stored as given, with regions upper-cased, types expanded and naive times in the campaign zone."""
    spec = CampaignSpec(
        "spring", "carrier-a", windows="09:00-12:00,14:00-20:00", days="mon-fri",
        start_at=datetime(2030, 6, 1, 9, 0), retry_delays={Outcome.BUSY: timedelta(minutes=10)},
        allowed_regions=("cn", "HK"), allowed_types=("mobile",),
    )
    campaign_id = create_campaign(db, spec)
    campaign = get_campaign(db, "spring")
    assert (campaign.id, campaign.state, campaign.trunk) == (campaign_id, "draft", "carrier-a")
    assert campaign.start_at == datetime(2030, 6, 1, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert campaign.retry_delays == {"busy": 600.0}
    assert campaign.allowed_regions == ("CN", "HK")
    assert campaign.allowed_types == ("fixed_line_or_mobile", "mobile")
    assert [c.name for c in list_campaigns(db)] == ["spring"]


def test_duplicate_name_is_refused(db: psycopg.Connection[Any]) -> None:
    """Names are unique; the second create says so."""
    create_campaign(db, CampaignSpec("spring", "t"))
    with pytest.raises(ConfigError, match="already exists"):
        create_campaign(db, CampaignSpec("spring", "t"))


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"windows": "25:00-26:00"}, "25:00"),
        ({"windows": "0900"}, "0900"),
        ({"windows": "09:00-09:00"}, "09:00-09:00"),
        ({"days": "mon-funday"}, "funday"),
        ({"tz": "Mars/Olympus"}, "Mars/Olympus"),
        ({"region": "XX"}, "XX"),
        ({"recur_cron": "every day"}, "every day"),
        ({"max_attempts": 0}, "max-attempts"),
        ({"cps": 0.0}, "cps"),
        ({"allowed_types": ("sofa",)}, "sofa"),
        ({"allowed_regions": ("ZZZ",)}, "ZZZ"),
        ({"trunk": "bad trunk"}, "bad trunk"),
        ({"retry_delays": {Outcome.ANSWERED: timedelta(minutes=1)}}, "never retried"),
        ({"start_at": datetime(2030, 1, 2), "end_at": datetime(2030, 1, 1)}, "end-at"),
    ],
)
def test_bad_options_are_refused_with_the_reason(
    db: psycopg.Connection[Any], changes: dict[str, Any], fragment: str
) -> None:
    """Each bad option is refused, naming the campaign and the offending value; nothing is stored."""
    spec = CampaignSpec(**{"name": "bad", "trunk": "t", **changes})
    with pytest.raises(ConfigError, match="campaign 'bad'") as caught:
        create_campaign(db, spec)
    assert fragment in str(caught.value)
    assert list_campaigns(db) == []


def test_state_machine(db: psycopg.Connection[Any]) -> None:
    """draft -> running <-> paused -> cancelled, and each illegal step says why."""
    create_campaign(db, CampaignSpec("c", "t"))
    with pytest.raises(IllegalTransition, match="it is draft; start it first"):
        change_state(db, "c", "pause")
    assert change_state(db, "c", "start") == "running"
    with pytest.raises(IllegalTransition, match="already running"):
        change_state(db, "c", "start")
    assert change_state(db, "c", "pause") == "paused"
    with pytest.raises(IllegalTransition, match="use resume"):
        change_state(db, "c", "start")
    assert change_state(db, "c", "resume") == "running"
    assert change_state(db, "c", "cancel") == "cancelled"
    for action in ("start", "pause", "resume", "cancel"):
        with pytest.raises(IllegalTransition, match="it is cancelled"):
            change_state(db, "c", action)  # type: ignore[arg-type]


def test_unknown_campaign_is_a_clear_error(db: psycopg.Connection[Any]) -> None:
    """An unknown name is a CampaignNotFound that names it."""
    with pytest.raises(CampaignNotFound, match="no campaign named 'ghost'"):
        change_state(db, "ghost", "start")


def test_cancel_leaves_a_dialing_job_alone(db: psycopg.Connection[Any]) -> None:
    """Waiting jobs are cancelled; the live call and finished jobs keep their state."""
    campaign_id = create_campaign(db, CampaignSpec("c", "t"))
    numbers = iter(fictional_numbers(6))
    by_status = {s: add_jobs(db, campaign_id, [next(numbers)], status=s)[0]
                 for s in ("pending", "queued", "retry_wait", "dialing", "completed", "failed")}
    change_state(db, "c", "start")
    change_state(db, "c", "cancel")
    after = dict(db.execute("SELECT id, status FROM dial_jobs").fetchall())
    assert {s: after[i] for s, i in by_status.items()} == {
        "pending": "cancelled", "queued": "cancelled", "retry_wait": "cancelled",
        "dialing": "dialing", "completed": "completed", "failed": "failed",
    }


def _attempt(db: psycopg.Connection[Any], campaign_id: int, job_id: int, attempt: int, outcome: str,
             ago_s: float, tries: int = 1) -> None:
    for try_index in range(tries):
        db.execute(
            "INSERT INTO call_attempts (job_id, campaign_id, attempt, try_index, trunk, outcome, end_at)"
            " VALUES (%s, %s, %s, %s, 't', %s, now() - make_interval(secs => %s))",
            (job_id, campaign_id, attempt, try_index, outcome, ago_s),
        )


def test_status_reports_counts_answer_rate_and_eta(db: psycopg.Connection[Any]) -> None:
    """Attempts count once per attempt whatever the variant tries; ETA follows the recent pace."""
    campaign_id = create_campaign(db, CampaignSpec("c", "t"))
    change_state(db, "c", "start")
    done = add_jobs(db, campaign_id, fictional_numbers(4), status="completed")
    add_jobs(db, campaign_id, fictional_numbers(6, prefix="+86138"), status="pending")
    db.execute("UPDATE dial_jobs SET outcome = 'answered' WHERE id = ANY(%s)", (done[:3],))
    for index, job in enumerate(done):
        outcome = "answered" if index < 3 else "busy"
        _attempt(db, campaign_id, job, 1, outcome, ago_s=120 + index, tries=2)  # two variant tries, one attempt
    status = campaign_status(db, "c")
    assert {"state", "jobs", "outcomes", "attempts", "answer_rate", "eta_s"} <= status.keys()
    assert status["state"] == "running"
    assert status["jobs"]["completed"] == 4 and status["jobs"]["pending"] == 6
    assert status["outcomes"] == {"answered": 3}
    assert (status["attempts"], status["answered"], status["answer_rate"]) == (4, 3, 0.75)
    # 4 attempts over the two minutes since the first one: 2 a minute, 6 jobs to go: about 3 minutes.
    assert status["eta_s"] is not None and 150 < status["eta_s"] < 200


def test_status_of_an_idle_campaign_has_no_eta(db: psycopg.Connection[Any]) -> None:
    """No attempts: no answer rate and no ETA; nothing left: ETA zero."""
    campaign_id = create_campaign(db, CampaignSpec("c", "t"))
    add_jobs(db, campaign_id, fictional_numbers(2))
    status = campaign_status(db, "c")
    assert (status["attempts"], status["answer_rate"], status["eta_s"]) == (0, None, None)
    create_campaign(db, CampaignSpec("empty", "t"))
    assert campaign_status(db, "empty")["eta_s"] == 0.0
