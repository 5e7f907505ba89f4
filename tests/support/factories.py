"""Rows for tests, written with plain SQL so tests do not depend on the code under test."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg.types.json import Jsonb


def create_campaign(conn: psycopg.Connection[Any], name: str = "test-campaign", **fields: Any) -> int:
    """Insert a campaign (state 'running' unless given) and return its id."""
    values: dict[str, Any] = {"name": name, "trunk": "default", "state": "running", **fields}
    if "retry_delays" in values and isinstance(values["retry_delays"], dict):
        values["retry_delays"] = Jsonb(values["retry_delays"])
    columns = ", ".join(values)
    placeholders = ", ".join(f"%({k})s" for k in values)
    row = conn.execute(
        f"INSERT INTO campaigns ({columns}) VALUES ({placeholders}) RETURNING id".encode(), values
    ).fetchone()
    assert row is not None
    return int(row[0])


def add_jobs(
    conn: psycopg.Connection[Any], campaign_id: int, numbers: Iterable[str], *, status: str = "pending",
    due_in_s: float = 0.0,
) -> list[int]:
    """Insert jobs for E.164 numbers; returns their ids in order."""
    ids = []
    for e164 in numbers:
        row = conn.execute(
            "INSERT INTO dial_jobs (campaign_id, e164, status, next_attempt_at)"
            " VALUES (%s, %s, %s, now() + make_interval(secs => %s)) RETURNING id",
            (campaign_id, e164, status, due_in_s),
        ).fetchone()
        assert row is not None
        ids.append(int(row[0]))
    return ids


def fictional_numbers(count: int, prefix: str = "+86139") -> list[str]:
    """Fictional CN mobiles +86 139 0000 0000 upward (the 139 0000 block is reserved for fiction here)."""
    return [f"{prefix}{i:08d}" for i in range(count)]
