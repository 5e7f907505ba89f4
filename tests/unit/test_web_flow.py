"""The pure parts of the web page's flow support: where a recording may come from, reading an uploaded flow."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from producer.web.core import HERE, fmt_time
from producer.web.flow_form import check as check_upload
from producer.web.flow_form import read_flow
from producer.web.flow_view import Recording, local_recording, recording_view, steps
from producer.web.i18n import translator, word
from tests.support.flows import ISSUE_FLOW, tone_wav


def test_a_recording_is_found_by_its_path_or_its_name_inside_the_folder(tmp_path: Path) -> None:
    """The worker's absolute path, or the same file name under this host's folder (another mount point)."""
    folder = tmp_path / "recordings"
    folder.mkdir()
    wav = folder / "0abc-keep.wav"
    wav.write_bytes(b"RIFF")
    assert local_recording(folder, str(wav)) == wav.resolve()
    assert local_recording(folder, "/mnt/worker-3/data/recordings/0abc-keep.wav") == wav.resolve()
    assert local_recording(folder, "/mnt/worker-3/data/recordings/missing.wav") is None
    assert local_recording(None, str(wav)) is None


def test_nothing_outside_the_folder_is_ever_chosen(tmp_path: Path) -> None:
    """`..`, a symlink leading out, the folder itself, a URL, a NUL byte: all None."""
    folder = tmp_path / "recordings"
    folder.mkdir()
    outside = tmp_path / "secret.wav"
    outside.write_bytes(b"RIFF")
    (folder / "out.wav").symlink_to(outside)
    for reference in (str(folder / ".." / "secret.wav"), "../secret.wav", str(outside), str(folder / "out.wav"),
                      str(folder), "..", "https://example.invalid/r.wav", "a\0b.wav", ""):
        assert local_recording(folder, reference) is None, reference


def test_the_ladder_links_only_what_it_can_serve(tmp_path: Path) -> None:
    """A file here: this server's link; a URL: itself; a worker path: text (no link)."""
    folder = tmp_path / "recordings"
    folder.mkdir()
    (folder / "x-keep.wav").write_bytes(b"RIFF")
    assert recording_view({"recording": "/w/recordings/x-keep.wav"}, folder, "/ui/attempts/7/recording") == \
        Recording("/w/recordings/x-keep.wav", "/ui/attempts/7/recording")
    assert recording_view({"recording": "https://store.invalid/r.wav"}, folder, "/l").url == \
        "https://store.invalid/r.wav"
    assert recording_view({"recording": "/w/recordings/y.wav"}, folder, "/l") == Recording("/w/recordings/y.wav",
                                                                                           None)
    assert recording_view({"recording": None}, folder, "/l") is None


def test_steps_list_known_keys_in_order_then_any_others() -> None:
    """step, action, result, at_s first, whatever order the JSON had; unknown keys kept at the end."""
    shown = steps({"flow_steps": [{"played_s": 3.1, "result": "played", "step": "offer", "action": "play",
                                   "at_s": 3.2, "volume": 2}, "odd"]})
    assert shown == [[("step", "offer"), ("action", "play"), ("result", "played"), ("at_s", 3.2), ("played_s", 3.1),
                      ("volume", 2)], [("result", "odd")]]


def test_an_uploaded_flow_takes_its_wavs_by_name_or_base_name() -> None:
    """`play = "prompts/offer.wav"` takes an uploaded offer.wav; the flow then loads like the CLI's."""
    wav = tone_wav(0.2)
    upload = read_flow("C:\\fakepath\\flow.toml", ISSUE_FLOW.replace('"offer.wav"', '"prompts/offer.wav"').encode(),
                       [("offer.wav", wav), ("other.wav", b"x")])
    assert upload.error is None and upload.flow is not None
    assert upload.flow.prompts == {"prompts/offer.wav": wav}
    assert check_upload(upload) is None


def test_an_unreadable_flow_file_is_one_error_naming_the_file() -> None:
    """Not UTF-8, unknown suffix, bad YAML, missing WAV: each one message with the file's name."""
    assert "flow.toml: not UTF-8" in str(read_flow("flow.toml", b"\xff\xfe", []).error)
    assert "unknown flow format '.txt'" in str(read_flow("flow.txt", b"start = 1", []).error)
    assert "flow.yaml: not valid YAML" in str(read_flow("flow.yaml", b"a: [", []).error)
    missing = check_upload(read_flow("flow.toml", ISSUE_FLOW.encode(), []))
    assert missing is not None and missing.startswith("flow.toml: step 'offer': WAV 'offer.wav' is missing")


def _render(**columns: object) -> str:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    at = datetime(2030, 6, 1, 1, 0, tzinfo=UTC)
    attempt = {"id": 7, "attempt": 1, "try_index": 0, "variant": "e164", "dialled_uri": "sip:+8613900001111@pbx",
               "provisional": [], "status_code": 200, "reason": "OK", "outcome": "transferred", "invite_at": at,
               "answer_at": at, "end_at": at, "duration_s": 12.5, "hangup_by": "remote", "flow_steps": None,
               "digits": None, "transfer_target": None, "transfer_status": None, "recording": None,
               "first_audio_s": None, "amd_decision": None, "amd_reason": None, "amd_decided_at_s": None, **columns}
    from producer.web import flow_view

    return env.get_template("_ladder.html").render(
        job={"id": 1, "e164": "+8613900001111", "outcome": "transferred", "status": "completed"},
        attempts=[attempt], extra=[], tz="Asia/Shanghai", t=translator("en"), word=lambda code: word("en", code),
        fmt_time=fmt_time, recordings={7: recording_view(attempt, None, "/ui/attempts/7/recording")},
        steps=flow_view.steps, has_flow=flow_view.has_flow)


def test_the_flow_row_escapes_what_the_cdr_holds_and_is_absent_without_a_flow() -> None:
    """Digits and a worker path are text, escaped; a call without a flow has no flow row."""
    html = _render(digits="<1>", recording="/w/<b>.wav",
                   flow_steps=[{"step": "menu", "action": "gather", "result": "digits", "at_s": 1.0}])
    assert "&lt;1&gt;" in html and "/w/&lt;b&gt;.wav" in html and "on the worker host" in html
    assert "step: menu" in html and "at: 1.0 s" in html
    assert "flow-row" not in _render()
