"""An operator's day in a real browser: sign in, list a DNC number, create a campaign, upload, start, watch, export.

Against ``dialer api`` with workers, a dispatcher and the sandbox PBX (see
conftest). What the page shows is compared with what Postgres holds and with
what the HTTP API returns, never with numbers written into the test.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import psycopg
import pytest

from producer.demo import sample_csv
from tests.browser.conftest import Server
from tests.browser.pages import new_context, shot, sign_in

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]
CAMPAIGN = "网页 demo"  # a non-ASCII name with a space: pages address campaigns by id


def _fill(page: Any, values: dict[str, str]) -> None:
    for name, value in values.items():
        page.fill(f"#f-{name}", value)


def test_operator_runs_the_demo_list_from_the_browser(
    browser: Any, server: Server, db: psycopg.Connection[Any], artefacts: Path
) -> None:
    """Every step of the issue's flow, with each page's numbers checked against Postgres and the API."""
    context = new_context(browser)
    page = context.new_page()
    outside: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(server.base) else outside.append(r.url))
    sign_in(page, server.base, server.token)
    shot(page, artefacts, "01-campaigns-empty")

    page.click("header nav >> text=Do-not-call list")
    page.fill("#dnc-add input[name=number]", "139 0000 7777")
    page.fill("#dnc-add input[name=reason]", "asked not to be called")
    page.click("#dnc-add button[type=submit]")
    assert "+8613900007777" in page.inner_text("#dnc-msg")
    assert "+8613900007777" in page.inner_text("#dnc-list")

    page.goto(f"{server.base}/ui/new")
    _fill(page, {"name": CAMPAIGN, "window": "25:00-26:00", "ring-timeout": "4s", "hold": "2s",
                 "max-attempts": "2", "retry-delay": "busy=3s,no_answer=3s,transient=3s,worker_lost=3s",
                 "max-concurrent": "8", "cps": "oops"})
    page.click("form.form-grid button[type=submit]")
    errors = {f: page.inner_text(f".field[data-field='{f}'] .field-error")
              for f in page.eval_on_selector_all(".field.invalid", "els => els.map(e => e.dataset.field)")}
    assert set(errors) == {"window", "cps"}, errors
    assert "25:00" in errors["window"] and "oops" in errors["cps"]
    assert db.execute("SELECT count(*) FROM campaigns").fetchone() == (0,)
    shot(page, artefacts, "02-new-campaign-errors")
    _fill(page, {"window": "", "cps": "20"})
    page.click("form.form-grid button[type=submit]")
    page.wait_for_selector("#status")
    row = db.execute("SELECT id, state FROM campaigns WHERE name = %s", (CAMPAIGN,)).fetchone()
    assert row is not None
    campaign_id, state = row
    assert state == "draft" and page.url.split("?")[0].endswith(f"/ui/campaigns/{campaign_id}")

    page.set_input_files("form[data-upload] input[type=file]", str(sample_csv()))
    page.click("form[data-upload] button[type=submit]")
    page.wait_for_selector("#upload-summary")
    assert page.eval_on_selector("#upload-progress", "e => e.value") == 100
    shown = {k: int(page.inner_text(f"#upload-summary [data-key={k}] dd"))
             for k in ("accepted", "duplicates", "dnc", "rejected")}
    stored = db.execute("SELECT id, accepted, duplicates, dnc, rejected FROM uploads").fetchall()
    assert len(stored) == 1 and shown == dict(zip(("accepted", "duplicates", "dnc", "rejected"), stored[0][1:],
                                                  strict=True))
    assert shown["rejected"] > 0 and shown["dnc"] == 1
    rejects = db.execute("SELECT row_number::text, field, raw_value, reason FROM upload_rejects"
                         " ORDER BY row_number, field").fetchall()
    table = page.eval_on_selector_all("#rejects tbody tr",
                                      "rows => rows.map(r => [...r.cells].map(c => c.textContent))")
    assert [tuple(r) for r in table] == rejects
    with page.expect_download() as download:
        page.click("#rejects-csv")
    rows = list(csv.reader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))
    assert rows[0] == ["row", "field", "value", "reason"] and [tuple(r) for r in rows[1:]] == rejects
    shot(page, artefacts, "03-upload-rejects")

    page.click("button[data-action=start]")
    page.wait_for_selector("p.notice >> text=running")
    page.wait_for_selector(".status[data-done='1']", timeout=180_000)  # live: no reload in between
    jobs = dict(db.execute("SELECT e164, coalesce(outcome, status) FROM dial_jobs").fetchall())
    assert jobs["+8613900001111"] == "answered"
    page.wait_for_function("n => document.querySelectorAll('#jobs-table tbody tr[data-job]').length === n",
                           arg=len(jobs))
    shown_outcomes = dict(page.eval_on_selector_all(
        "#jobs-table tbody tr[data-job]",
        "rows => rows.map(r => [r.dataset.e164, r.querySelector('[data-code]').dataset.code])"))
    assert shown_outcomes == jobs
    shot(page, artefacts, "04-campaign-done")

    page.click("tr[data-e164='+8613900001111'] [data-ladder]")
    ladder = page.wait_for_selector(".ladder")
    text = ladder.inner_text()
    tries = db.execute("SELECT a.variant, a.status_code FROM call_attempts a JOIN dial_jobs j ON j.id = a.job_id"
                       " WHERE j.e164 = '+8613900001111' ORDER BY a.attempt, a.try_index").fetchall()
    assert tries and tries[-1][1] == 200  # variants before e164 only while the fleet has not learnt the order
    assert page.eval_on_selector_all(".ladder tbody tr", "rows => rows.length") == len(tries)
    for variant, code in tries:
        assert variant in text and str(code) in text
    shot(page, artefacts, "05-ladder")

    page.fill("#filters input[name=q]", "Alice")
    page.click("#filters button[type=submit]")
    page.wait_for_selector("#jobs-table")
    assert page.eval_on_selector_all("#jobs-table tbody tr[data-job]", "rs => rs.map(r => r.dataset.e164)") == [
        "+8613900001111"]
    page.goto(f"{server.base}/ui/campaigns/{campaign_id}?outcome=busy")
    busy = page.eval_on_selector_all("#jobs-table tbody tr[data-job]", "rs => rs.map(r => r.dataset.e164)")
    assert sorted(busy) == sorted(e for e, o in jobs.items() if o == "busy") and busy

    with page.expect_download() as export:
        page.click("#export")
    from_page = Path(export.value.path()).read_bytes()
    with server.client() as api:
        from_api = api.get(f"/campaigns/{CAMPAIGN}/outcomes.csv")
    assert from_api.status_code == 200 and from_page == from_api.content
    assert len(from_page.decode().splitlines()) == len(jobs) + 1

    page.goto(f"{server.base}/ui/")
    page.wait_for_selector(f"tr[data-campaign='{CAMPAIGN}'][data-done='1']")
    shot(page, artefacts, "06-campaigns")
    assert outside == []
    context.close()
