"""The attempt ladder shows CDR columns it does not know yet: flow steps as a list, a recording as a link."""

from __future__ import annotations

from datetime import UTC, datetime

from jinja2 import Environment, FileSystemLoader, select_autoescape

from producer.web.core import HERE, fmt_time
from producer.web.i18n import translator, word


def _render(extra: list[str], **columns: object) -> str:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    at = datetime(2030, 6, 1, 1, 0, tzinfo=UTC)
    attempt = {"attempt": 1, "try_index": 0, "variant": "e164", "dialled_uri": "sip:+8613900001111@pbx",
               "provisional": [{"code": 180}], "status_code": 200, "reason": "OK", "outcome": "answered",
               "invite_at": at, "answer_at": at, "end_at": at, "duration_s": 12.5, "hangup_by": "remote",
               **columns}
    return env.get_template("_ladder.html").render(
        job={"id": 1, "e164": "+8613900001111", "outcome": "answered", "status": "completed"},
        attempts=[attempt], extra=extra, tz="Asia/Shanghai", t=translator("en"),
        word=lambda code: word("en", code), fmt_time=fmt_time)


def test_flow_steps_and_recording_link_appear_when_the_cdr_has_them() -> None:
    """A JSON list column renders one item per step; an http(s) or absolute recording path becomes a link."""
    html = _render(["flow", "recording_url"],
                   flow=[{"step": "offer", "action": "play", "result": "played"},
                         {"step": "menu", "action": "gather", "digits": "1"}],
                   recording_url="/recordings/1.wav")
    assert html.count("<li>") == 2 and "digits: 1" in html
    assert '<a href="/recordings/1.wav" class="recording">Recording</a>' in html
    assert "2030-06-01 09:00:00" in html  # 01:00 UTC, shown in the campaign's zone


def test_a_recording_that_is_not_a_link_is_shown_as_text_and_markup_is_escaped() -> None:
    """A bucket key is no URL: plain text, and whatever it holds is escaped."""
    html = _render(["recording_path"], recording_path="s3-bucket/<b>1</b>.wav")
    assert 'class="recording"' not in html
    assert "&lt;b&gt;1&lt;/b&gt;" in html


def test_without_extra_columns_the_ladder_is_the_base_cdr() -> None:
    """Today's schema: no flow or recording headings."""
    html = _render([])
    assert "Flow steps" not in html and "Recording" not in html
    assert "e164" in html and "200 OK" in html
