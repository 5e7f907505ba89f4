"""Apply the ordered SQL files in ``migrations/`` exactly once each.

Safe when several processes start at once (compose starts workers and the
dispatcher together): a session-level advisory lock serialises them, and each
file runs in its own transaction together with its row in
``schema_migrations``, so a crash half-way leaves no half-applied file.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import psycopg

# An arbitrary constant that names "sip-dialer migrations" among advisory locks.
_LOCK_KEY = 0x5D1A1E


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    sql: str


def available_migrations() -> list[Migration]:
    folder = resources.files("shared.db") / "migrations"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [Migration(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


def migrate(url: str) -> list[str]:
    """Apply what is missing; return the versions applied by this call (empty when up to date)."""
    applied_now: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for migration in available_migrations():
                if migration.version in done:
                    continue
                with conn.transaction():
                    conn.execute(migration.sql.encode())
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (migration.version,))
                applied_now.append(migration.version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now
