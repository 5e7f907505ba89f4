"""``dialer call NUMBER --flow FILE [--json]``: the real command runs a flow on answer and prints its steps.

The sipp carrier (digest auth, +86 routing) answers the third variant; the
flow says a text rendered with espeak-ng from a ``--var`` and hangs up. The
ladder comes first, then the flow's steps, then the business outcome.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.sipp import DEFAULT_KEYS, SippPeer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NUMBER = "13900001111"  # fictional
Sipp = Callable[..., SippPeer]
FLOW = """
start = "hello"

[steps.hello]
say = "Hello {name}, this is a test."
next = "bye"

[steps.bye]
hangup = true
"""


def dialer(workdir: Path, *args: str, peer: SippPeer) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DIALER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(DIALER_SIP_REGISTRAR=peer.address, DIALER_SIP_USERNAME=DEFAULT_KEYS["username"],
               DIALER_SIP_PASSWORD=DEFAULT_KEYS["password"], DIALER_DATA_DIR=str(workdir / "data"))
    return subprocess.run([sys.executable, "-c", "from shared.cli import main; main()", *args],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=50, check=False)


@pytest.fixture
def flow_file(tmp_path: Path) -> Path:
    path = tmp_path / "flows" / "hello.toml"
    path.parent.mkdir()
    path.write_text(FLOW, encoding="utf-8")
    return path


def test_json_gains_the_flow_and_the_business_outcome(sipp_uas: Sipp, tmp_path: Path, flow_file: Path) -> None:
    """--json: "flow" lists each step (step, action, result, at_s, played_s); outcome is message_played."""
    peer = sipp_uas("carrier")
    done = dialer(tmp_path, "call", NUMBER, "--flow", str(flow_file), "--var", "name=Li Lei", "--json", peer=peer)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [a["outcome"] for a in report["attempts"]] == ["not_found", "not_found", "answered"]
    steps = report["flow"]
    assert [(s["step"], s["action"], s["result"]) for s in steps] == [("hello", "say", "played"),
                                                                     ("bye", "hangup", "hangup")]
    assert steps[0]["played_s"] > 1.0 and steps[0]["at_s"] >= steps[0]["played_s"] - 0.1
    assert report["outcome"] == "message_played"
    assert report["first_audio_s"] is not None and report["first_audio_s"] < 2.0
    assert list((tmp_path / "data" / "prompts").glob("*.wav"))  # rendered once, cached by hash


def test_ladder_then_flow_steps(sipp_uas: Sipp, tmp_path: Path, flow_file: Path) -> None:
    """Text: the ladder, a `flow:` block with one line per step, then the business outcome."""
    peer = sipp_uas("carrier")
    done = dialer(tmp_path, "call", NUMBER, "--flow", str(flow_file), "--var", "name=Li Lei", peer=peer)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("REGISTER") and lines[3].endswith("=> answered")
    assert lines[4].startswith("flow: first audio")
    assert " hello  say -> played (heard " in lines[5] and " bye  hangup -> hangup" in lines[6]
    assert lines[-1] == "outcome: message_played"


def test_a_placeholder_without_var_places_no_call(sipp_uas: Sipp, tmp_path: Path, flow_file: Path) -> None:
    """No --var name: one error naming the step and the placeholder, and no INVITE leaves."""
    peer = sipp_uas("carrier")
    done = dialer(tmp_path, "call", NUMBER, "--flow", str(flow_file), peer=peer)
    assert done.returncode != 0
    assert "step 'hello': placeholder {name} names no column" in done.stderr
    assert peer.received("INVITE") == []
