"""The HTTP API against the real database, through FastAPI's TestClient (httpx)."""

from __future__ import annotations

import csv
import io
import logging
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # Starlette 1.x warns that its TestClient wants the httpx2 fork; httpx (a declared test dependency)
    # still works, and pytest turns warnings into errors, so the warning is silenced for this import only.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from producer.api import create_app
from shared.errors import ConfigError
from tests.support.factories import add_jobs, create_campaign, fictional_numbers

pytestmark = pytest.mark.integration

Conn = psycopg.Connection[Any]
TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(database_url: str, db: Conn, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(database_url, TOKEN, data_dir=tmp_path, pool_size=2)) as test_client:
        yield test_client


def test_missing_or_wrong_token_is_401_and_not_logged(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    """No token, a wrong one or another scheme: 401 with WWW-Authenticate; the log never holds a token."""
    caplog.set_level(logging.WARNING, logger="producer.api")
    wrong = "wrong-token-that-must-not-leak"
    for headers in ({}, {"Authorization": f"Bearer {wrong}"}, {"Authorization": f"Basic {wrong}"}):
        response = client.get("/campaigns", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    assert "refused GET /campaigns" in caplog.text
    assert wrong not in caplog.text and TOKEN not in caplog.text
    assert client.get("/healthz").status_code == 200


def test_short_token_refuses_to_start(database_url: str) -> None:
    """A token short enough to guess stops the API at start, naming the variable."""
    with pytest.raises(ConfigError, match="DIALER_API_TOKEN"):
        create_app(database_url, "short")


def test_create_list_and_get_campaigns(client: TestClient) -> None:
    """A JSON body creates a draft campaign with its options normalised; list and get return it."""
    body = {"name": "spring", "trunk": "carrier-a", "windows": "09:00-20:00", "days": "mon-fri",
            "retry_delays": {"busy": 600}, "start_at": "2030-06-01T09:00"}
    created = client.post("/campaigns", json=body, headers=AUTH)
    assert created.status_code == 201, created.text
    assert created.json()["state"] == "draft"
    start_at = datetime.fromisoformat(created.json()["start_at"])
    assert start_at == datetime(2030, 6, 1, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))  # no offset given: tz
    assert created.json()["retry_delays"] == {"busy": 600.0}
    assert [c["name"] for c in client.get("/campaigns", headers=AUTH).json()] == ["spring"]
    assert client.get("/campaigns/spring", headers=AUTH).json()["trunk"] == "carrier-a"


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"name": "x", "trunk": "t", "windows": "25:00-26:00"}, 400, "25:00"),
        ({"name": "x", "trunk": "t", "retry_delays": "answered=5m"}, 400, "never retried"),
        ({"name": "x", "trunk": "t", "start_at": "tomorrow"}, 400, "ISO 8601"),
        ({"name": "x", "trunk": "t", "colour": "red"}, 422, "colour"),
    ],
)
def test_bad_campaign_is_refused_with_the_reason(client: TestClient, body: dict[str, Any], status: int,
                                                 fragment: str) -> None:
    """Bad hours, a never-retried outcome, a non-ISO time: 400 with the reason; an unknown field: 422."""
    response = client.post("/campaigns", json=body, headers=AUTH)
    assert response.status_code == status
    assert fragment in response.text


def test_duplicate_name_and_unknown_campaign(client: TestClient) -> None:
    """A second campaign with the same name is 400 with the reason; an unknown name is 404 everywhere."""
    assert client.post("/campaigns", json={"name": "a", "trunk": "t"}, headers=AUTH).status_code == 201
    again = client.post("/campaigns", json={"name": "a", "trunk": "t"}, headers=AUTH)
    assert again.status_code == 400 and "already exists" in again.json()["detail"]
    assert client.get("/campaigns/nope", headers=AUTH).status_code == 404
    assert client.get("/campaigns/nope/outcomes.csv", headers=AUTH).status_code == 404


def test_state_changes_and_illegal_ones(client: TestClient) -> None:
    """start -> pause -> resume -> cancel; pausing a paused campaign is 409 with the reason."""
    client.post("/campaigns", json={"name": "flow", "trunk": "t"}, headers=AUTH)
    for action, state in (("start", "running"), ("pause", "paused")):
        response = client.post(f"/campaigns/flow/{action}", headers=AUTH)
        assert response.json() == {"campaign": "flow", "state": state}
    conflict = client.post("/campaigns/flow/pause", headers=AUTH)
    assert conflict.status_code == 409 and "already paused" in conflict.json()["detail"]
    assert client.post("/campaigns/flow/resume", headers=AUTH).json()["state"] == "running"
    assert client.post("/campaigns/flow/cancel", headers=AUTH).json()["state"] == "cancelled"
    assert client.post("/campaigns/flow/explode", headers=AUTH).status_code == 422


def test_upload_then_status(client: TestClient) -> None:
    """A multipart CSV upload returns its summary; status counts the jobs it created."""
    client.post("/campaigns", json={"name": "up", "trunk": "t"}, headers=AUTH)
    numbers = fictional_numbers(3)
    data = ("name,phone\n" + "".join(f"lead{i},{n}\n" for i, n in enumerate(numbers)) + "bad,12\n").encode()
    response = client.post("/campaigns/up/uploads", headers=AUTH,
                           files={"file": ("leads.csv", data, "text/csv")})
    assert response.status_code == 201, response.text
    summary = response.json()
    assert (summary["accepted"], summary["rejected"], summary["campaign"]) == (3, 1, "up")
    status = client.get("/campaigns/up/status", headers=AUTH).json()
    assert status["jobs"]["pending"] == 3 and status["total_jobs"] == 3


def test_unreadable_upload_is_400(client: TestClient) -> None:
    """A binary file is refused as a whole (BadUpload -> 400) before any row is stored."""
    client.post("/campaigns", json={"name": "bin", "trunk": "t"}, headers=AUTH)
    response = client.post("/campaigns/bin/uploads", headers=AUTH,
                           files={"file": ("leads.csv", b"\x00\x01\x02" * 200, "text/csv")})
    assert response.status_code == 400


def test_outcomes_export_has_one_row_per_job(client: TestClient, db: Conn) -> None:
    """The CSV lists every job with its last status code and the end of its last attempt."""
    cid = create_campaign(db, "export")
    called, untouched = add_jobs(db, cid, fictional_numbers(2))
    db.execute("UPDATE dial_jobs SET status = 'completed', outcome = 'answered', attempts = 2, last_status = 200"
               " WHERE id = %s", (called,))
    for attempt, code in ((1, 486), (2, 200)):
        db.execute("INSERT INTO call_attempts (job_id, campaign_id, attempt, try_index, trunk, status_code, outcome,"
                   " end_at) VALUES (%s, %s, %s, 0, 'default', %s, 'busy',"
                   " timestamptz '2030-01-01 10:00+00' + make_interval(mins => %s))",
                   (called, cid, attempt, code, attempt))
    response = client.get("/campaigns/export/outcomes.csv", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["job_id"] for r in rows] == [str(called), str(untouched)]
    assert rows[0] == {"job_id": str(called), "e164": fictional_numbers(1)[0], "status": "completed",
                       "outcome": "answered", "attempts": "2", "last_status_code": "200",
                       "last_attempt_at": "2030-01-01T10:02:00+00:00", "agent_disposition": ""}
    assert (rows[1]["status"], rows[1]["outcome"], rows[1]["last_attempt_at"]) == ("pending", "", "")


def test_outcomes_export_carries_the_agents_disposition(client: TestClient, db: Conn) -> None:
    """A job whose answered attempt ran an AI agent exports the disposition the agent reported."""
    cid = create_campaign(db, "export-agent")
    [job] = add_jobs(db, cid, fictional_numbers(1))
    steps = '[{"step": "agent", "action": "stream", "result": "hangup", "disposition": "interested"}]'
    db.execute("INSERT INTO call_attempts (job_id, campaign_id, attempt, try_index, trunk, status_code, outcome,"
               " flow_steps) VALUES (%s, %s, 1, 0, 'default', 200, 'answered', %s::jsonb)", (job, cid, steps))
    response = client.get("/campaigns/export-agent/outcomes.csv", headers=AUTH)
    [row] = list(csv.DictReader(io.StringIO(response.text)))
    assert row["agent_disposition"] == "interested"


def test_metrics_route(client: TestClient) -> None:
    """/metrics serves the Prometheus text without a token."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert "dialer_dispatched_total" in response.text
