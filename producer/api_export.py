"""The outcomes export: one CSV row per job of a campaign, streamed from a server-side cursor.

Streamed because a campaign may hold millions of jobs: the rows go out as
Postgres produces them, a few thousand at a time, and neither the API process
nor the client's first byte waits for the whole table. The columns are the
ones a sales team reconciles against its CRM: the number, where the job
ended, why, after how many attempts, the last SIP status code, and when the
last attempt ended.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from psycopg import Connection

HEADER = ("job_id", "e164", "status", "outcome", "attempts", "last_status_code", "last_attempt_at",
          "agent_disposition")
_FETCH = 2000

_EXPORT = """
SELECT j.id, j.e164, j.status, j.outcome, j.attempts, j.last_status, last.at, agent.disposition
  FROM dial_jobs j
  LEFT JOIN LATERAL (
        SELECT max(COALESCE(a.end_at, a.invite_at, a.created_at)) AS at
          FROM call_attempts a WHERE a.job_id = j.id
       ) last ON true
  LEFT JOIN LATERAL (  -- the AI agent's word on the latest attempt it handled (a stream step's entry)
        SELECT step->>'disposition' AS disposition
          FROM call_attempts a, jsonb_array_elements(a.flow_steps) AS step
         WHERE a.job_id = j.id AND a.flow_steps IS NOT NULL AND step->>'action' = 'stream'
           AND step->>'disposition' IS NOT NULL
         ORDER BY a.attempt DESC, a.try_index DESC LIMIT 1
       ) agent ON true
 WHERE j.campaign_id = %s
 ORDER BY j.id
"""


def csv_line(values: tuple[Any, ...]) -> str:
    """One CSV line (RFC 4180 quoting, CRLF); None is empty, times are ISO 8601 with offset."""
    buffer = io.StringIO()
    cells = ["" if v is None else v.isoformat() if hasattr(v, "isoformat") else v for v in values]
    csv.writer(buffer).writerow(cells)
    return buffer.getvalue()


def export_rows(conn: Connection[Any], campaign_id: int) -> Iterator[str]:
    """CSV text of every job of the campaign, header first, in chunks of about ``_FETCH`` rows."""
    yield csv_line(HEADER)
    with conn.transaction(), conn.cursor(name="outcomes_export") as cur:
        cur.itersize = _FETCH
        cur.execute(_EXPORT, (campaign_id,))
        chunk: list[str] = []
        for row in cur:
            chunk.append(csv_line(tuple(row)))
            if len(chunk) >= _FETCH:
                yield "".join(chunk)
                chunk = []
        if chunk:
            yield "".join(chunk)
