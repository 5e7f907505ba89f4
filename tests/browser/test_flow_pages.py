"""Call flows in a real browser: an answered call's ladder with its flow and recording; a campaign made with a flow.

Against ``dialer api`` with workers (see conftest). The CDR is written by the
worker's own functions (tests/browser/flow_cdr.py) into the database the API
reads, and the recording into the API's DIALER_DATA_DIR/recordings, as a
worker on the same host leaves it. What the page shows is compared with
what Postgres holds.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import psycopg
import pytest

from producer.campaign_spec import FlowSpec
from producer.campaigns import get_campaign
from shared.flow.model import Flow, FlowError
from tests.browser.conftest import Server
from tests.browser.flow_cdr import answered_with_flow, write_recording
from tests.browser.pages import new_context, shot, sign_in
from tests.support.factories import add_jobs, create_campaign
from tests.support.flows import ISSUE_FLOW, tone_wav

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]


def test_the_ladder_of_a_flow_call_lists_its_steps_and_links_its_recording(
    browser: Any, server: Server, db: psycopg.Connection[Any], artefacts: Path
) -> None:
    """Open the outcome row's ladder: each flow step with its facts, transfer, digits; the link plays the WAV."""
    campaign_id = create_campaign(db, "flow ladder", state="draft")  # draft: the dispatcher leaves it alone
    (job_id,) = add_jobs(db, campaign_id, ["+8613900005555"], status="queued")
    wav = write_recording(Path(server.fleet.env["DIALER_DATA_DIR"]))
    answered_with_flow(db, job_id, str(wav))
    logged = db.execute("SELECT id, flow_steps FROM call_attempts WHERE job_id = %s", (job_id,)).fetchone()
    assert logged is not None
    attempt_id, flow_steps = logged

    context = new_context(browser)
    page = context.new_page()
    sign_in(page, server.base, server.token)
    page.goto(f"{server.base}/ui/campaigns/{campaign_id}")
    page.click(f"tr[data-job='{job_id}'] [data-ladder]")
    page.wait_for_selector(f".flow-row[data-flow-of='{attempt_id}']")
    shown = page.eval_on_selector_all(
        ".flow-steps li", "items => items.map(li => [...li.querySelectorAll('.meta')].map(m => m.dataset.key))")
    assert [keys[:4] for keys in shown] == [["step", "action", "result", "at_s"]] * len(flow_steps)
    names = page.eval_on_selector_all(".flow-steps li [data-key=step]", "els => els.map(e => e.textContent)")
    assert names == [f"step: {s['step']}" for s in flow_steps]
    facts = page.inner_text(".flow-facts")
    assert "sip:advisors@127.0.0.1:5060" in facts and "200" in facts and "0.04 s" in facts and "human" in facts
    assert page.inner_text(".flow-facts [data-key=digits] dd") == "1"
    href = page.get_attribute("a.recording", "href")
    assert href == f"/ui/attempts/{attempt_id}/recording"
    shot(page, artefacts, "07-flow-ladder")
    audio = context.request.get(f"{server.base}{href}")
    assert audio.status == 200 and audio.body() == wav.read_bytes()
    context.close()


def _create(page: Any, base: str, name: str, flow: Path, prompts: list[Path]) -> None:
    page.goto(f"{base}/ui/new")
    page.fill("#f-name", name)
    page.set_input_files("#f-flow", str(flow))
    page.set_input_files("#f-prompts", [str(p) for p in prompts])
    page.click("form.form-grid button[type=submit]")


def test_a_campaign_is_created_with_its_flow_and_a_bad_flow_is_refused_beside_its_field(
    browser: Any, server: Server, db: psycopg.Connection[Any], artefacts: Path, tmp_path: Path
) -> None:
    """A bad branch: one error naming the step beside the flow field, nothing stored; the good flow is stored."""
    wav = tmp_path / "offer.wav"
    wav.write_bytes(tone_wav(1.0))
    bad = tmp_path / "bad.toml"
    bad.write_text(ISSUE_FLOW.replace('none = "bye"', 'none = "nowhere"'), encoding="utf-8")
    good = tmp_path / "flow.yaml"
    good.write_text(_as_yaml(), encoding="utf-8")

    context = new_context(browser)
    page = context.new_page()
    sign_in(page, server.base, server.token)
    _create(page, server.base, "with a flow", bad, [wav])
    page.wait_for_selector(".field[data-field='flow'].invalid")
    invalid = page.eval_on_selector_all(".field.invalid", "els => els.map(e => e.dataset.field)")
    assert invalid == ["flow"]
    with pytest.raises(FlowError) as cli_error:  # what the CLI's loader says of the same file, by its name
        FlowSpec(document=tomllib.loads(bad.read_text()), prompts={"offer.wav": wav.read_bytes()},
                 source="bad.toml").load()
    shown = page.inner_text(".field[data-field='flow'] .field-error")
    assert shown == str(cli_error.value) and shown.startswith("bad.toml: step 'menu': 'nowhere' names no step")
    assert db.execute("SELECT count(*) FROM campaigns").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM prompts").fetchone() == (0,)
    shot(page, artefacts, "08-new-campaign-bad-flow")

    _create(page, server.base, "with a flow", good, [wav])
    page.wait_for_selector("#status")
    stored = get_campaign(db, "with a flow").flow
    assert stored is not None
    flow = Flow.from_json(stored)
    assert flow.steps["agent"].target == "sip:advisors@127.0.0.1:5060"
    audio = db.execute("SELECT audio FROM prompts WHERE sha256 = %s", (flow.steps["offer"].wav_sha256,)).fetchone()
    assert audio is not None and bytes(audio[0]) == wav.read_bytes()
    context.close()


def _as_yaml() -> str:
    """The issue's flow as YAML: the page takes every format the CLI does."""
    import yaml

    return str(yaml.safe_dump(tomllib.loads(ISSUE_FLOW), allow_unicode=True))
