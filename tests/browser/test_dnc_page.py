"""The do-not-call page: import a file with a bad row, search, remove; the same effects as `dialer dnc ...`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.browser.conftest import Server
from tests.browser.pages import new_context, shot, sign_in
from tests.support.factories import add_jobs, create_campaign

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_import_search_and_remove_numbers(
    browser: Any, server: Server, db: psycopg.Connection[Any], artefacts: Path, tmp_path: Path
) -> None:
    """A file of numbers lists the good ones (skipping their waiting jobs), reports the bad row; remove unlists."""
    campaign_id = create_campaign(db, name="dnc-check", state="paused")
    add_jobs(db, campaign_id, ["+8613900008881"])
    numbers = tmp_path / "opt-outs.csv"
    numbers.write_text("手机号,原因\n139 0000 8881,客户要求\n139-0000-8882,\nnot a number,\n", encoding="utf-8")
    context = new_context(browser)
    page = context.new_page()
    sign_in(page, server.base, server.token)
    page.goto(f"{server.base}/ui/dnc")
    page.set_input_files("#dnc-upload input[type=file]", str(numbers))
    page.fill("#dnc-upload input[name=reason]", "opt-out list")
    page.click("#dnc-upload button[type=submit]")
    summary = page.inner_text("#dnc-imported")
    assert "2 added" in summary and "1 rejected" in summary
    rejects = page.eval_on_selector_all("#dnc-rejects tbody tr", "rs => rs.map(r => r.cells[0].textContent)")
    assert rejects == ["4"]
    listed = dict(db.execute("SELECT e164, reason FROM dnc").fetchall())
    assert listed == {"+8613900008881": "客户要求", "+8613900008882": "opt-out list"}
    assert db.execute("SELECT status FROM dial_jobs").fetchone() == ("skipped_dnc",)
    shot(page, artefacts, "11-dnc-import")

    page.fill("#dnc-search input[name=q]", "8882")
    page.click("#dnc-search button[type=submit]")
    assert page.eval_on_selector_all("#dnc-list tbody tr[data-e164]", "rs => rs.map(r => r.dataset.e164)") == [
        "+8613900008882"]
    page.click("#dnc-list tr[data-e164='+8613900008882'] button[type=submit]")
    assert "+8613900008882" in page.inner_text("#dnc-msg")
    assert dict(db.execute("SELECT e164, reason FROM dnc").fetchall()) == {"+8613900008881": "客户要求"}

    page.fill("#dnc-add input[name=number]", "call me maybe")
    with page.expect_response(lambda r: r.request.method == "POST") as refused:
        page.click("#dnc-add button[type=submit]")
    assert refused.value.status == 400
    assert "letters" in page.inner_text("p.error")  # the producer's own words, as `dialer dnc add` prints them
    assert db.execute("SELECT count(*) FROM dnc").fetchone() == (1,)
    context.close()
