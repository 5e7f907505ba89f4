"""Flow files: the issue's example parses as written; each bad flow gives ONE error naming step and problem."""

from __future__ import annotations

import io
import json
import wave
from pathlib import Path

import pytest

from shared.flow import FlowError, check_columns, render_text
from shared.flow.load import load_flow_file
from shared.flow.model import Flow
from tests.support.flows import ISSUE_FLOW


def wav_bytes(rate: int = 8000, channels: int = 1, width: int = 2, seconds: float = 0.5) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(b"\x00" * int(rate * seconds) * channels * width)
    return buf.getvalue()


def write_flow(tmp_path: Path, text: str, name: str = "flow.toml", wav: bytes | None = None) -> Path:
    (tmp_path / "offer.wav").write_bytes(wav_bytes() if wav is None else wav)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_issue_example_is_accepted_as_written(tmp_path: Path) -> None:
    """The TOML in the issue loads; the WAV path is relative to the flow file and gets its hash."""
    sub = tmp_path / "flows"
    sub.mkdir()
    loaded = load_flow_file(write_flow(sub, ISSUE_FLOW))
    flow = loaded.flow
    assert flow.start == "offer"
    assert [s.kind for s in flow.steps.values()] == ["play", "gather", "transfer", "opt_out", "hangup"]
    menu = flow.steps["menu"]
    assert menu.prompt_kind == "say" and menu.gather is not None and menu.gather.timeout_s == 6
    assert dict(menu.branches) == {"1": "agent", "9": "optout", "none": "bye"}
    assert flow.steps["agent"].mode == "refer"
    sha = flow.steps["offer"].wav_sha256
    assert sha is not None and loaded.wavs[sha] == (sub / "offer.wav").read_bytes()
    assert Flow.from_json(json.loads(json.dumps(flow.to_json()))) == flow


def test_yaml_and_json_say_the_same(tmp_path: Path) -> None:
    """The same flow as YAML and as JSON loads to the same steps."""
    import tomllib

    import yaml

    doc = tomllib.loads(ISSUE_FLOW)
    from_toml = load_flow_file(write_flow(tmp_path, ISSUE_FLOW)).flow
    from_yaml = load_flow_file(write_flow(tmp_path, yaml.safe_dump(doc), "flow.yaml")).flow
    from_json = load_flow_file(write_flow(tmp_path, json.dumps(doc), "flow.json")).flow
    assert from_toml == from_yaml == from_json


BAD_FLOWS = [
    ('[steps.offer]\nplay = "offer.wav"\n[steps.x]\nshout = "hi"\n', "step 'x': unknown key 'shout'"),
    ('start = "a"\n[steps.a]\nnext = "a"\n', "step 'a': no action"),
    ('start = "a"\n[steps.a]\nplay = "missing.wav"\n', "step 'a': WAV 'missing.wav' is missing or unreadable"),
    ('start = "a"\n[steps.a]\ntransfer = "advisors at the pbx"\n', "step 'a': transfer target"),
    ('start = "a"\n[steps.a]\nplay = "offer.wav"\nnext = "nowhere"\n', "step 'a': 'nowhere' names no step"),
    ('start = "a"\n[steps.a]\ngather = {}\nsay = "hi"\nbranches = { "1" = "b", none = "b" }\n'
     '[steps.b]\npause = 1\nnext = "a"\n', "loop with no way out"),
    ('start = "a"\n[steps.a]\nplay = "offer.wav"\nsay = "hi"\n', "step 'a': has both 'play' and 'say'"),
    ('start = "a"\n[steps.a]\nsay = "hi"\nvoice = "klingon"\n', "step 'a': voice 'klingon' is unknown"),
    ('start = "a"\n[steps.a]\nsay = "hi {name!r}"\n', "step 'a': say text has a placeholder"),
    ('start = "zz"\n[steps.a]\nhangup = true\n', "start 'zz' names no step"),
    ('start = "a"\n[steps.a]\ngather = { num_digits = 0 }\n', "step 'a': gather: num_digits 0"),
    ('start = "a"\n[steps.a]\nrecord = "video"\n', "step 'a': record is"),
    ('start = "a"\n[steps.a]\nplay = "offer.wav"\nbranches = { "1" = "a" }\n', "step 'a': branches belong"),
    ('start = "a"\nsteps = 3\n', "no steps"),
    ('start = "a"\n[steps.a]\nhangup = true\n[steps.b\n', "not valid TOML"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_FLOWS)
def test_each_bad_flow_gives_one_clear_error(tmp_path: Path, text: str, expected: str) -> None:
    """The error names the step (or the top level) and what is wrong, in one line."""
    with pytest.raises(FlowError) as caught:
        load_flow_file(write_flow(tmp_path, text))
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message and str(tmp_path / "flow.toml") in message


@pytest.mark.parametrize(("wav", "problem"), [
    (wav_bytes(channels=2), "2 channels"),
    (wav_bytes(rate=44100), "44100 Hz"),
    (wav_bytes(width=1), "8-bit"),
    (b"RIFF0000WAVEnot really", "not a PCM WAV"),
    (wav_bytes(seconds=0.01), "at least 100 ms"),
])
def test_a_wav_that_would_not_play_is_refused(tmp_path: Path, wav: bytes, problem: str) -> None:
    """Only mono 8/16 kHz 16-bit PCM is a prompt; the error says what the file is and how to convert it."""
    with pytest.raises(FlowError, match=problem) as caught:
        load_flow_file(write_flow(tmp_path, ISSUE_FLOW, wav=wav))
    assert "step 'offer'" in str(caught.value)


def test_16_khz_prompts_are_accepted(tmp_path: Path) -> None:
    """16 kHz mono 16-bit is fine: the bridge resamples it."""
    assert load_flow_file(write_flow(tmp_path, ISSUE_FLOW, wav=wav_bytes(rate=16000))).flow.start == "offer"


def test_placeholders_are_checked_against_columns_and_filled(tmp_path: Path) -> None:
    """A {column} that the upload lacks is one error naming the step and the column; known ones are filled."""
    text = 'start = "hi"\n[steps.hi]\nsay = "Hello {name}, your code is {code}. {{not a column}}"\n'
    flow = load_flow_file(write_flow(tmp_path, text)).flow
    check_columns(flow, ["phone", "name", "code"])
    with pytest.raises(FlowError, match=r"step 'hi': placeholder \{code\} names no column"):
        check_columns(flow, ["phone", "name"])
    assert render_text(flow.steps["hi"], {"name": "Li Lei", "code": 42}) == \
        "Hello Li Lei, your code is 42. {not a column}"


def test_gather_without_none_branch_is_a_way_out(tmp_path: Path) -> None:
    """A menu that loops back on 2 but ends when nothing is pressed is valid (it has a way out)."""
    text = ('start = "menu"\n[steps.menu]\ngather = { timeout_s = 2 }\nsay = "press"\n'
            'branches = { "2" = "again" }\n[steps.again]\nsay = "again"\nnext = "menu"\n')
    assert load_flow_file(write_flow(tmp_path, text)).flow.start == "menu"


def test_hold_is_a_flow_of_pause_and_hangup() -> None:
    """Today's hold_s becomes pause + hangup."""
    flow = Flow.hold(20)
    assert [s.kind for s in flow.steps.values()] == ["pause", "hangup"] and flow.steps["hold"].pause_s == 20
