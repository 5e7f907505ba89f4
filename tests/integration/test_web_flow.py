"""The ladder of an answered call with a flow, its recording route, and the create form's flow file (real Postgres).

CDR rows are written by the worker's own functions (tests/browser/flow_cdr.py:
flow_facts, with_flow, store.finish), so the page is checked against what a
worker really stores, not against rows shaped by hand.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from producer.api import create_app
from producer.campaigns import get_campaign
from shared.flow.model import Flow
from tests.browser.flow_cdr import answered_with_flow, write_recording
from tests.support.factories import add_jobs, create_campaign
from tests.support.flows import ISSUE_FLOW, tone_wav

pytestmark = pytest.mark.integration
TOKEN = "web-flow-token-0123456789abcdef"
Conn = psycopg.Connection[Any]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def client(database_url: str, db: Conn, data_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(database_url, TOKEN, data_dir=data_dir, pool_size=2),
                    follow_redirects=False) as test_client:
        yield test_client


def _sign_in(client: TestClient) -> str:
    form = client.get("/ui/login").text
    nonce = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert nonce is not None
    assert client.post("/ui/login", data={"token": TOKEN, "csrf_token": nonce.group(1)}).status_code == 303
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', client.get("/ui/").text)
    assert csrf is not None
    return csrf.group(1)


def _answered(db: Conn, recording: str | None) -> tuple[int, int]:
    campaign = create_campaign(db, "flow-ladder")
    (job_id,) = add_jobs(db, campaign, ["+8613900005555"], status="queued")
    answered_with_flow(db, job_id, recording)
    row = db.execute("SELECT id FROM call_attempts WHERE job_id = %s", (job_id,)).fetchone()
    assert row is not None
    return job_id, int(row[0])


def test_the_ladder_shows_the_flow_and_serves_a_recording_this_host_holds(
        client: TestClient, db: Conn, data_dir: Path) -> None:
    """Steps in order with their facts, transfer, digits, first audio, amd; the recording link returns the WAV."""
    wav = write_recording(data_dir)
    job_id, attempt_id = _answered(db, str(wav))
    _sign_in(client)
    html = client.get(f"/ui/jobs/{job_id}/ladder").text
    steps = re.findall(r"<li>(.*?)</li>", html, re.S)
    assert [re.search(r'data-key="step">step: (\w+)', s).group(1) for s in steps] == [  # type: ignore[union-attr]
        "offer", "menu", "keep", "agent", "keep"]
    assert "played: 3.1 s" in steps[0] and "digits: 1" in steps[1] and "transfer status: 200" in steps[3]
    assert "sip:advisors@127.0.0.1:5060" in html and "0.04 s" in html and "human (human)" in html
    link = f"/ui/attempts/{attempt_id}/recording"
    assert f'<a href="{link}" class="recording">' in html
    served = client.get(link)
    assert served.status_code == 200 and served.content == wav.read_bytes()
    assert served.headers["content-type"] == "audio/wav"


def test_a_recording_on_another_host_is_named_as_text_and_not_served(client: TestClient, db: Conn) -> None:
    """The worker's path, which this host lacks: shown as text saying where it is; the route says 404."""
    job_id, attempt_id = _answered(db, "/var/lib/dialer-worker-7/recordings/0abc-keep.wav")
    _sign_in(client)
    html = client.get(f"/ui/jobs/{job_id}/ladder").text
    assert 'class="recording"' not in html
    assert "/var/lib/dialer-worker-7/recordings/0abc-keep.wav" in html and "on the worker host" in html
    assert client.get(f"/ui/attempts/{attempt_id}/recording").status_code == 404


def test_a_reference_outside_the_recordings_folder_is_never_served(
        client: TestClient, db: Conn, data_dir: Path) -> None:
    """A stored path with `..`, or a symlink in the folder to a file outside it: 404, not the file."""
    secret = data_dir / "spool" / "secret.wav"
    secret.parent.mkdir(parents=True)
    secret.write_bytes(tone_wav(0.1))
    (data_dir / "recordings").mkdir()
    (data_dir / "recordings" / "link-keep.wav").symlink_to(secret)
    _job, dotted = _answered(db, str(data_dir / "recordings" / ".." / "spool" / "secret.wav"))
    db.execute("UPDATE call_attempts SET recording = %s WHERE id = %s",
               (str(data_dir / "recordings" / "link-keep.wav"), dotted))
    _sign_in(client)
    assert client.get(f"/ui/attempts/{dotted}/recording").status_code == 404
    db.execute("UPDATE call_attempts SET recording = %s WHERE id = %s", ("../spool/secret.wav", dotted))
    assert client.get(f"/ui/attempts/{dotted}/recording").status_code == 404


def test_the_recording_route_needs_a_session(client: TestClient, db: Conn, data_dir: Path) -> None:
    """Signed out: sent to sign-in, no audio."""
    _job, attempt_id = _answered(db, str(write_recording(data_dir)))
    answer = client.get(f"/ui/attempts/{attempt_id}/recording")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/login")


def _create(client: TestClient, csrf: str, name: str, flow: tuple[str, bytes],
            prompts: list[tuple[str, bytes]]) -> Any:
    files = [("flow", (flow[0], flow[1], "application/octet-stream"))]
    files += [("prompts", (n, data, "audio/wav")) for n, data in prompts]
    return client.post("/ui/new", data={"csrf_token": csrf, "name": name, "trunk": "t"}, files=files)


def test_the_form_creates_a_campaign_with_its_flow_and_prompts(client: TestClient, db: Conn) -> None:
    """A TOML flow whose play step names prompts/offer.wav takes the uploaded offer.wav; both are stored."""
    csrf = _sign_in(client)
    wav = tone_wav(1.0)
    text = ISSUE_FLOW.replace('play = "offer.wav"', 'play = "prompts/offer.wav"')
    answer = _create(client, csrf, "flow-form", ("flow.toml", text.encode()), [("offer.wav", wav)])
    assert answer.status_code == 303, answer.text
    stored = get_campaign(db, "flow-form").flow
    assert stored is not None
    sha = Flow.from_json(stored).steps["offer"].wav_sha256
    audio = db.execute("SELECT audio FROM prompts WHERE sha256 = %s", (sha,)).fetchone()
    assert audio is not None and bytes(audio[0]) == wav


@pytest.mark.parametrize(("name", "body", "prompts", "expected"), [
    ("flow.toml", ISSUE_FLOW.replace('none = "bye"', 'none = "nowhere"'), True,
     "flow.toml: step 'menu': 'nowhere' names no step"),
    ("flow.toml", ISSUE_FLOW, False, "step 'offer': WAV 'offer.wav' is missing"),
    ("flow.txt", ISSUE_FLOW, True, "unknown flow format '.txt'"),
    ("flow.json", "{not json", True, "flow.json: not valid JSON"),
])
def test_a_bad_flow_is_one_error_beside_the_flow_field_and_nothing_is_created(
        client: TestClient, db: Conn, name: str, body: str, prompts: bool, expected: str) -> None:
    """The loader's own message, beside the flow input; no campaign, no prompt stored."""
    csrf = _sign_in(client)
    answer = _create(client, csrf, "flow-bad", (name, body.encode()), [("offer.wav", tone_wav())] if prompts else [])
    assert answer.status_code == 400
    error = re.search(r'<p class="field-error" id="e-flow">([^<]*)</p>', answer.text)
    assert error is not None and expected in error.group(1).replace("&#39;", "'"), answer.text
    assert re.findall(r'class="field-error" id="e-([\w-]+)"', answer.text) == ["flow"]
    assert db.execute("SELECT count(*) FROM campaigns").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM prompts").fetchone() == (0,)


def test_a_good_flow_beside_a_bad_field_asks_for_the_files_again(client: TestClient, db: Conn) -> None:
    """The browser drops chosen files on the error page: the flow field says to choose them again."""
    csrf = _sign_in(client)
    files = [("flow", ("flow.toml", ISSUE_FLOW.encode(), "text/plain")),
             ("prompts", ("offer.wav", tone_wav(), "audio/wav"))]
    answer = client.post("/ui/new", data={"csrf_token": csrf, "name": "again", "trunk": "t", "cps": "oops"},
                         files=files)
    assert answer.status_code == 400
    assert 'id="e-cps"' in answer.text and 'id="e-flow-again"' in answer.text and 'id="e-flow"' not in answer.text
    assert db.execute("SELECT count(*) FROM campaigns").fetchone() == (0,)
