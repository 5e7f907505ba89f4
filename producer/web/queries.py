"""What the pages read: campaign summaries, a page of jobs, one job's attempt ladder, upload rejects, the DNC list.

Reads only. Every change (create, state, upload, DNC) goes through the
producer functions the CLI and the API call, so a rule has one home; these
queries only choose which rows to show. The ladder reads ``call_attempts``
with ``SELECT *``: columns added by later migrations (flow steps, a
recording reference) reach the page without a change here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import Connection
from psycopg.rows import dict_row

from producer.api_export import csv_line
from producer.campaigns import TRANSITIONS, Campaign, CampaignNotFound, campaign_status, get_campaign, list_campaigns
from producer.upload.report import REPORT_HEADER
from shared.schedule import CallingWindow

PAGE_SIZE = 50
LADDER_BASE = frozenset({
    "id", "job_id", "campaign_id", "attempt", "try_index", "trunk", "variant", "dialled_uri", "sip_call_id",
    "status_code", "reason", "provisional", "invite_at", "first_provisional_at", "answer_at", "end_at",
    "duration_s", "hangup_by", "outcome", "worker", "created_at",
})


def campaign_by_id(conn: Connection[Any], campaign_id: int) -> Campaign:
    """Pages name campaigns by id: a name may hold any printable character, '/' included."""
    row = conn.execute("SELECT name FROM campaigns WHERE id = %s", (campaign_id,)).fetchone()
    if row is None:
        raise CampaignNotFound(f"no campaign with id {campaign_id}")
    return get_campaign(conn, str(row[0]))


def next_window(campaign: Campaign, now: datetime | None = None) -> datetime | None:
    """When the campaign may next dial (now, if open), by the dispatcher's own window rule."""
    window = CallingWindow.parse(campaign.windows, campaign.days, campaign.tz)
    return window.next_open(now or datetime.now(UTC), campaign.start_at, campaign.end_at)


def summary(conn: Connection[Any], campaign: Campaign) -> dict[str, Any]:
    """campaign_status plus what the list shows beside it: calls in progress, calls/s, next window, done."""
    status = campaign_status(conn, campaign.name)
    status["in_progress"] = status["jobs"].get("dialing", 0)
    status["calls_per_s"] = round(status["pace_per_min"] / 60.0, 2)
    now = datetime.now(UTC)
    upcoming = next_window(campaign, now) if campaign.state in ("draft", "running", "paused") else None
    status["next_window"] = upcoming.astimezone(ZoneInfo(campaign.tz)) if upcoming is not None else None
    status["window_open"] = upcoming is not None and upcoming <= now
    status["done"] = status["total_jobs"] > 0 and status["remaining"] == 0
    status["campaign_obj"] = campaign
    status["allowed"] = [action for action, (sources, _target) in TRANSITIONS.items() if campaign.state in sources]
    return status


LIST_LIMIT = 100  # the list refreshes every few seconds: the newest campaigns, not every one ever made


def summaries(conn: Connection[Any]) -> list[dict[str, Any]]:
    """The newest campaigns first, each with its live figures."""
    return [summary(conn, campaign) for campaign in list(reversed(list_campaigns(conn)))[:LIST_LIMIT]]


@dataclass(frozen=True)
class JobsPage:
    rows: list[dict[str, Any]]
    total: int
    page: int
    pages: int
    outcomes: list[str]


def jobs_page(conn: Connection[Any], campaign_id: int, query: str = "", outcome: str = "",
              page: int = 1) -> JobsPage:
    """A page of the campaign's jobs; ``query`` matches digits of the number or any text of the row's columns."""
    where = ["campaign_id = %(cid)s"]
    params: dict[str, Any] = {"cid": campaign_id}
    query = query.strip()
    if query:
        digits = "".join(ch for ch in query if ch.isdigit())
        clause = "metadata::text ILIKE %(text)s"
        params["text"] = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        if digits:
            clause += " OR e164 LIKE %(digits)s"
            params["digits"] = f"%{digits}%"
        where.append(f"({clause})")
    if outcome:
        where.append("coalesce(outcome, status) = %(outcome)s")
        params["outcome"] = outcome
    condition = " AND ".join(where)
    row = conn.execute(f"SELECT count(*) FROM dial_jobs WHERE {condition}".encode(), params).fetchone()
    total = int(row[0]) if row else 0
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(page, 1), pages)
    params.update(limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT id, e164, metadata, status, outcome, attempts, last_status, updated_at FROM dial_jobs"
            f" WHERE {condition} ORDER BY id LIMIT %(limit)s OFFSET %(offset)s".encode(), params).fetchall()
    outcomes = [str(r[0]) for r in conn.execute(
        "SELECT DISTINCT coalesce(outcome, status) FROM dial_jobs WHERE campaign_id = %s ORDER BY 1",
        (campaign_id,))]
    return JobsPage(rows, total, page, pages, outcomes)


def ladder(conn: Connection[Any], job_id: int) -> tuple[dict[str, Any] | None, list[dict[str, Any]], list[str]]:
    """A job, its attempts in order (every column), and the names of columns beyond the base CDR."""
    with conn.cursor(row_factory=dict_row) as cur:
        job = cur.execute("SELECT id, campaign_id, e164, metadata, status, outcome, attempts FROM dial_jobs"
                          " WHERE id = %s", (job_id,)).fetchone()
        attempts = cur.execute("SELECT * FROM call_attempts WHERE job_id = %s ORDER BY attempt, try_index",
                               (job_id,)).fetchall()
        names = [d.name for d in cur.description or ()]
    extra = [name for name in names if name not in LADDER_BASE]
    return job, attempts, extra


def upload_rejects(conn: Connection[Any], upload_id: int, limit: int = 200) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT row_number, field, raw_value, reason FROM upload_rejects WHERE upload_id = %s"
        " ORDER BY row_number, field LIMIT %s", (upload_id, limit)).fetchall()


def upload_campaign(conn: Connection[Any], upload_id: int) -> int | None:
    row = conn.execute("SELECT campaign_id FROM uploads WHERE id = %s", (upload_id,)).fetchone()
    return int(row[0]) if row else None


def rejects_csv(conn: Connection[Any], upload_id: int) -> Iterator[str]:
    """The rejected rows of an upload as the CLI's report has them: row, field, value, reason."""
    yield csv_line(REPORT_HEADER)
    for row in conn.execute(
            "SELECT row_number, field, raw_value, reason FROM upload_rejects WHERE upload_id = %s"
            " ORDER BY row_number, field", (upload_id,)):
        yield csv_line(tuple(row))


def dnc_search(conn: Connection[Any], query: str = "", limit: int = 100) -> tuple[list[tuple[Any, ...]], int]:
    """Listed numbers matching the digits of ``query`` (all when empty), newest first, and how many match."""
    digits = "".join(ch for ch in query if ch.isdigit())
    pattern = f"%{digits}%"
    row = conn.execute("SELECT count(*) FROM dnc WHERE e164 LIKE %s", (pattern,)).fetchone()
    rows = conn.execute("SELECT e164, reason, added_at FROM dnc WHERE e164 LIKE %s"
                        " ORDER BY added_at DESC, e164 LIMIT %s", (pattern, limit)).fetchall()
    return rows, int(row[0]) if row else 0
