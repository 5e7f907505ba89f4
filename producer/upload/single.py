"""One number at a time: ``dialer enqueue`` and the HTTP API's single-job endpoint.

The same rules as a file upload, for one row: the campaign's number policy,
the DNC list (a listed number goes in as ``skipped_dnc``, never dialled) and
the unique key (campaign, e164), so enqueueing twice leaves one job and says
so. The due time is a row column the dispatcher reads, never a broker ETA.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import Connection
from psycopg.types.json import Jsonb

from producer.campaigns import get_campaign, parse_when
from shared.errors import ConfigError

_OPEN_STATES = frozenset({"draft", "running", "paused"})


@dataclass(frozen=True)
class EnqueueResult:
    job_id: int
    e164: str
    created: bool  # False: the campaign already had a job for this number (left as it was)
    status: str
    due_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "e164": self.e164, "created": self.created, "status": self.status,
                "due_at": self.due_at.isoformat()}


def enqueue_number(
    conn: Connection[Any], campaign_name: str, raw: str, *, at: datetime | str | None = None,
    metadata: dict[str, Any] | None = None,
) -> EnqueueResult:
    """Insert one job due at ``at`` (ISO text without offset = the campaign's time zone; None = now)."""
    campaign = get_campaign(conn, campaign_name)
    if campaign.state not in _OPEN_STATES:
        raise ConfigError(f"campaign {campaign.name!r} is {campaign.state}: it takes no new jobs")
    e164 = campaign.number_policy().normalise(raw).e164
    if isinstance(at, str):
        try:
            at = parse_when(at, campaign.tz)
        except ValueError as exc:
            raise ConfigError(f"--at: {exc}") from None
    elif at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=ZoneInfo(campaign.tz))
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO dial_jobs (campaign_id, e164, metadata, status, outcome, next_attempt_at)"
            " SELECT %(campaign)s, %(e164)s, %(metadata)s, CASE WHEN d THEN 'skipped_dnc' ELSE 'pending' END,"
            "        CASE WHEN d THEN 'skipped_dnc' END, coalesce(%(at)s, now())"
            " FROM (SELECT EXISTS (SELECT 1 FROM dnc WHERE e164 = %(e164)s) AS d) listed"
            " ON CONFLICT (campaign_id, e164) DO NOTHING RETURNING id, status, next_attempt_at",
            {"campaign": campaign.id, "e164": e164, "metadata": Jsonb(metadata or {}), "at": at},
        ).fetchone()
        created = row is not None
        if row is None:
            row = conn.execute(
                "SELECT id, status, next_attempt_at FROM dial_jobs WHERE campaign_id = %s AND e164 = %s",
                (campaign.id, e164),
            ).fetchone()
    assert row is not None
    return EnqueueResult(int(row[0]), e164, created, str(row[1]), row[2])
