"""`dialer demo` end to end: its printed outcome table must be what Postgres holds."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import psycopg
import pytest

pytestmark = pytest.mark.integration

ROW = re.compile(r"^(\+\d+)\s+(\S+)\s+(\w+)\s+(\d+)\s+([\d.]+)\s+(.*)$")


def test_demo_prints_what_postgres_recorded(db: psycopg.Connection[Any], database_url: str, redis_url: str,
                                            tmp_path: Any) -> None:
    """The demo dials the sample list (one callee talks with the AI agent); printed rows match Postgres."""
    env = {**os.environ, "DIALER_DATABASE_URL": database_url, "DIALER_REDIS_URL": redis_url,
           "DIALER_DATA_DIR": str(tmp_path)}
    for name in ("DIALER_SIP_REGISTRAR", "DIALER_SIP_USERNAME", "DIALER_SIP_PASSWORD", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    result = subprocess.run([sys.executable, "-c", "from shared.cli import main; main()", "demo"],
                            env=env, capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stderr[-3000:]
    printed = {m.group(1): m.groups() for m in map(ROW.match, result.stdout.splitlines()) if m}
    assert len(printed) == 13, result.stdout  # the sample list's 9 jobs and 4 callees that act on the flow

    jobs = db.execute("SELECT e164, COALESCE(outcome, status), attempts FROM dial_jobs ORDER BY id").fetchall()
    assert {e164: (outcome, attempts) for e164, outcome, attempts in jobs} == {
        e164: (row[2], int(row[3])) for e164, row in printed.items()}
    expected = {"+8613900001111": "answered", "+8613900002222": "busy", "+8613900003333": "no_answer",
                "+8613900004444": "answered", "+8613900005555": "rejected", "+8613900006666": "invalid_number",
                "+8613900007777": "skipped_dnc", "+8613900007002": "transferred", "+8613900007003": "transferred",
                "+8613900007009": "opted_out"}
    assert {k: printed[k][2] for k in expected} == expected
    tries = dict(db.execute(
        "SELECT j.e164, string_agg(a.variant || ' ' || a.status_code, ', ' ORDER BY a.attempt, a.try_index)"
        " FROM call_attempts a JOIN dial_jobs j ON j.id = a.job_id GROUP BY j.e164").fetchall())
    for e164, row in printed.items():
        assert row[5] == (tries.get(e164) or "-")
    assert "rejected row 14" in result.stdout and "premium-rate" in result.stdout
    # The flow's story per answered number: REFER accepted, REFER refused then bridged, an opt-out.
    assert re.search(r"\+8613900007002 +heard [\d.]+ s of prompt, pressed 1, transferred to advisors", result.stdout)
    assert re.search(r"\+8613900007003 +heard [\d.]+ s of prompt, pressed 1, transfer to advisors failed \(403\), "
                     r"transferred to advisors, ended at the flow's time limit", result.stdout)
    # The callee who presses 2 is handed to the reference AI agent, which listens 3 s and reports "interested".
    assert re.search(r"\+8613900007004 +heard [\d.]+ s of prompt, pressed 2, talked with the AI agent [\d.]+ s, "
                     r"disposition interested", result.stdout), result.stdout
    assert re.search(r"\+8613900007009 +heard [\d.]+ s of prompt, pressed 9, opted out", result.stdout)
    assert db.execute("SELECT count(*) FROM dnc WHERE e164 = '+8613900007009'").fetchone() == (1,)
    assert "sandbox-secret" not in result.stdout + result.stderr
