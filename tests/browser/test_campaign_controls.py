"""What the list and a campaign's page show while it runs, pause and resume from the page, search by number.

The campaign opens its window two days from now, so the fleet the browser
tests share dials none of its jobs: what the page shows comes only from the
rows this test writes, and each figure is compared with what
``campaign_status`` computes from them, never with a number typed in here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from producer.campaigns import campaign_status
from producer.web.core import fmt_duration
from tests.browser.conftest import Server
from tests.browser.pages import new_context, sign_in
from tests.support.factories import create_campaign

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CAMPAIGN = "controls"
TZ = "Asia/Shanghai"
# The list's cells, in its column order (templates/_campaign_rows.html).
CELLS = ("name", "state", "progress", "answer_rate", "in_progress", "calls_per_s", "eta", "next_window")


def _campaign_with_history(db: psycopg.Connection[Any], opens_at: datetime) -> int:
    """Three jobs still to dial, one live call, and six attempts that ended in the last minute."""
    campaign_id = create_campaign(db, name=CAMPAIGN, state="running", tz=TZ, start_at=opens_at)
    numbers = {"pending": ("+8613900002222", "+8613900002223", "+8613900002224"),
               "dialing": ("+8613900002225",), "completed": ("+8613900002226", "+8613900002227")}
    for status, e164s in numbers.items():
        for e164 in e164s:
            db.execute("INSERT INTO dial_jobs (campaign_id, e164, status, worker, lease_until, next_attempt_at)"
                       " VALUES (%s, %s, %s, %s, %s, %s)",
                       (campaign_id, e164, status, "page-test" if status == "dialing" else None,
                        datetime.now(UTC) + timedelta(hours=1) if status == "dialing" else None, opens_at))
    for job_id, in db.execute("SELECT id FROM dial_jobs WHERE status = 'completed'").fetchall():
        for attempt in (1, 2, 3):
            db.execute("INSERT INTO call_attempts (job_id, campaign_id, attempt, try_index, trunk, variant,"
                       " status_code, outcome, end_at) VALUES (%s, %s, %s, 0, 'default', '+86', 480,"
                       " 'no_answer', now() - interval '5 seconds')", (job_id, campaign_id, attempt))
    return campaign_id


def _row(page: Any) -> dict[str, str]:
    texts = page.eval_on_selector_all(f"tr[data-campaign='{CAMPAIGN}'] td", "tds => tds.map(td => td.innerText)")
    return dict(zip(CELLS, (t.strip() for t in texts), strict=True))


def test_list_figures_pause_resume_and_search_by_number(
    browser: Any, server: Server, db: psycopg.Connection[Any]
) -> None:
    """Calls in progress, calls/s, time to finish and next window as computed; pause and resume; find by number."""
    opens_at = (datetime.now(UTC) + timedelta(days=2)).replace(second=0, microsecond=0)
    campaign_id = _campaign_with_history(db, opens_at)
    context = new_context(browser)
    page = context.new_page()
    sign_in(page, server.base, server.token)
    page.wait_for_selector(f"tr[data-campaign='{CAMPAIGN}']")
    shown = _row(page)
    status = campaign_status(db, CAMPAIGN)
    assert status["jobs"]["dialing"] == 1 and status["pace_per_min"] > 0 and status["eta_s"]
    assert shown["in_progress"] == str(status["jobs"]["dialing"])
    assert float(shown["calls_per_s"]) == round(status["pace_per_min"] / 60.0, 2)
    assert shown["eta"] == fmt_duration(status["eta_s"])
    assert shown["next_window"] == opens_at.astimezone(ZoneInfo(TZ)).strftime("%Y-%m-%d %H:%M %Z")

    page.goto(f"{server.base}/ui/campaigns/{campaign_id}")
    page.click("button[data-action=pause]")
    page.wait_for_selector(".status[data-state=paused]")
    assert db.execute("SELECT state FROM campaigns WHERE id = %s", (campaign_id,)).fetchone() == ("paused",)
    assert not page.is_visible("button[data-action=pause]")
    page.click("button[data-action=resume]")
    page.wait_for_selector(".status[data-state=running]")
    assert db.execute("SELECT state FROM campaigns WHERE id = %s", (campaign_id,)).fetchone() == ("running",)

    page.fill("#filters input[name=q]", "139 0000 2223")
    page.click("#filters button[type=submit]")
    page.wait_for_selector("#jobs-table")
    found = page.eval_on_selector_all("#jobs-table tbody tr[data-job]", "rs => rs.map(r => r.dataset.e164)")
    assert found == ["+8613900002223"]
    db.execute("UPDATE campaigns SET state = 'cancelled' WHERE id = %s", (campaign_id,))
    context.close()
