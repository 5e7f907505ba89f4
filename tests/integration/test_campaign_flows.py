"""Campaigns with a call flow: created through the CLI and the API, stored with their prompts; bad flows refused."""

from __future__ import annotations

import base64
import tomllib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner, Result

import shared.cli
from producer.campaigns import CampaignSpec, FlowSpec, create_campaign, get_campaign
from producer.upload import ingest_bytes
from shared.errors import BadUpload
from shared.flow.model import Flow, FlowError
from tests.support.flows import ISSUE_FLOW, tone_wav, write_flow

with warnings.catch_warnings():
    from starlette.exceptions import StarletteDeprecationWarning

    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from producer.api import create_app

pytestmark = pytest.mark.integration
Conn = psycopg.Connection[Any]
TOKEN = "test-token-flows-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def run(database_url: str, db: Conn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    shared.cli._register_commands()
    monkeypatch.setenv("DIALER_DATABASE_URL", database_url)
    monkeypatch.setenv("DIALER_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(shared.cli.app, list(args))

    return invoke


@pytest.fixture
def client(database_url: str, db: Conn, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(database_url, TOKEN, data_dir=tmp_path, pool_size=2)) as test_client:
        yield test_client


def test_cli_creates_a_campaign_with_its_flow_and_prompts(run: Any, db: Conn, tmp_path: Path) -> None:
    """`dialer campaign create --flow flow.toml` stores the flow (jsonb) and the WAV in prompts by its hash."""
    path = write_flow(tmp_path / "flows")
    result = run("campaign", "create", "offer", "--trunk", "t", "--flow", str(path))
    assert result.exit_code == 0, result.output
    stored = get_campaign(db, "offer").flow
    assert stored is not None
    flow = Flow.from_json(stored)
    sha = flow.steps["offer"].wav_sha256
    audio = db.execute("SELECT audio, kind FROM prompts WHERE sha256 = %s", (sha,)).fetchone()
    assert audio is not None and bytes(audio[0]) == (tmp_path / "flows" / "offer.wav").read_bytes()


BAD = [
    (ISSUE_FLOW.replace('transfer = "sip:advisors@127.0.0.1:5060"', 'transfer = "advisors"'),
     "step 'agent': transfer target 'advisors' is not a SIP URI"),
    (ISSUE_FLOW.replace('play = "offer.wav"', 'play = "gone.wav"'), "step 'offer': WAV 'gone.wav' is missing"),
    (ISSUE_FLOW.replace('none = "bye"', 'none = "nowhere"'), "step 'menu': 'nowhere' names no step"),
    (ISSUE_FLOW.replace("opt_out = true", "opt_out = true\nvolume = 11"), "step 'optout': unknown key 'volume'"),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_cli_refuses_a_bad_flow_with_one_error_and_creates_nothing(
    run: Any, db: Conn, tmp_path: Path, text: str, expected: str
) -> None:
    """One error (main prints it as one `error:` line) naming the campaign, the file, the step and the problem;
    no campaign, no prompt."""
    path = write_flow(tmp_path, text)
    result = run("campaign", "create", "offer", "--trunk", "t", "--flow", str(path))
    assert isinstance(result.exception, FlowError)
    message = str(result.exception)
    assert expected in message and "campaign 'offer'" in message and str(path) in message and "\n" not in message
    assert db.execute("SELECT count(*) FROM campaigns").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM prompts").fetchone() == (0,)


def test_api_creates_a_campaign_with_a_flow_document_and_base64_prompts(client: TestClient, db: Conn) -> None:
    """POST /campaigns with flow (the document as JSON) and prompts (name -> base64 WAV)."""
    body = {"name": "api-offer", "trunk": "t", "flow": tomllib.loads(ISSUE_FLOW),
            "prompts": {"offer.wav": base64.b64encode(tone_wav(0.5)).decode()}}
    created = client.post("/campaigns", json=body, headers=AUTH)
    assert created.status_code == 201, created.text
    assert created.json()["flow"]["steps"]["agent"]["target"] == "sip:advisors@127.0.0.1:5060"
    assert db.execute("SELECT count(*) FROM prompts").fetchone() == (1,)


def test_api_refuses_a_bad_flow_with_400_naming_the_step(client: TestClient, db: Conn) -> None:
    """The same validation as the CLI: a missing prompt is 400 naming the step; nothing created."""
    body = {"name": "api-offer", "trunk": "t", "flow": tomllib.loads(ISSUE_FLOW)}
    refused = client.post("/campaigns", json=body, headers=AUTH)
    assert refused.status_code == 400
    assert "step 'offer': WAV 'offer.wav' is missing" in refused.json()["detail"]
    assert db.execute("SELECT count(*) FROM campaigns").fetchone() == (0,)


def test_upload_without_a_placeholder_column_is_refused_as_a_whole(db: Conn, tmp_path: Path) -> None:
    """A say text naming {name} refuses an upload with no `name` column: one error, no job stored."""
    text = 'start = "hi"\n[steps.hi]\nsay = "Hello {name}, this is your bank."\n'
    create_campaign(db, CampaignSpec("greet", "t", flow=FlowSpec.from_file(write_flow(tmp_path, text))))
    with pytest.raises(BadUpload, match=r"leads.csv: .*step 'hi': placeholder \{name\} names no column"):
        ingest_bytes(db, "greet", b"phone,city\n13900001111,Beijing\n", "leads.csv", data_dir=tmp_path)
    assert db.execute("SELECT count(*) FROM dial_jobs").fetchone() == (0,)
    summary = ingest_bytes(db, "greet", b"phone,name\n13900001111,Li Lei\n", "ok.csv", data_dir=tmp_path)
    assert summary.accepted == 1
