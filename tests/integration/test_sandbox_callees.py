"""The sandbox PBX's callees that act, against the real pjsua2 agent running a call script.

One callee presses 1 (RFC 2833) shortly after the prompt starts, one accepts
REFER and reports 200 in the NOTIFY, one refuses REFER (the script falls back
to bridging the agent extension itself). Each callee decodes what it hears to
a WAV, and the PBX's call log says how much prompt it heard, what it pressed
and what it did with the transfer.
"""

from __future__ import annotations

import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.calls import callee_story
from sandbox.plan import parse_plan_text
from sandbox.server import SandboxPbx
from tests.support.answer_scripts import ScriptedTest
from tests.support.baresip import write_tone
from worker.sip import SipAccountConfig, SipAgent

pytestmark = pytest.mark.integration

PLAN = """
[[users]]
username = "demo"
password = "sandbox-secret-for-tests"

[[rules]]
match = "+8613900007001"
action = "answer"
press = "1"
press_after_s = 0.5
hangup_after_s = 20

[[rules]]
match = "+8613900007002"
action = "answer"
refer = "accept"
hangup_after_s = 20

[[rules]]
match = "+8613900007003"
action = "answer"
refer = "refuse"
hangup_after_s = 20

[[rules]]
match = "advisors"
action = "answer"
hangup_after_s = 20
"""


@pytest.fixture
def pbx(tmp_path: Path) -> Iterator[SandboxPbx]:
    server = SandboxPbx(parse_plan_text(PLAN), recordings_dir=tmp_path / "heard")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def agent(pbx: SandboxPbx) -> Iterator[SipAgent]:
    sip = SipAgent(SipAccountConfig(registrar=f"127.0.0.1:{pbx.port}", username="demo",
                                    password="sandbox-secret-for-tests"))
    reg = sip.start()
    assert reg is not None and reg.registered
    yield sip
    sip.stop(grace_s=0)


def ended(pbx: SandboxPbx, number: str) -> bool:
    return pbx.wait_for_calls(lambda log: any(r.number == number and r.ended_at for r in log), timeout=10)


def record_of(pbx: SandboxPbx, number: str):  # type: ignore[no-untyped-def]
    [record] = [r for r in pbx.call_log if r.number == number and r.final_code == 200]
    return record


def test_callee_presses_1_after_the_prompt_starts_and_records_what_it_heard(
    pbx: SandboxPbx, agent: SipAgent, tmp_path: Path
) -> None:
    """The prompt is interrupted by the callee's 1; the log says it heard part of the prompt and pressed 1."""
    prompt = write_tone(tmp_path / "prompt.wav", 4.0, 1000.0)

    def on_dtmf(s: ScriptedTest, digit: str) -> None:
        assert s.ctl is not None
        s.ctl.stop_play()

    script = ScriptedTest(on_answer_do=lambda ctl: ctl.play(str(prompt)), on_dtmf_do=on_dtmf,
                          until=lambda s: s.digits == "1")
    result = agent.call(agent.uri_for("+8613900007001"), timeout_s=30, script_factory=lambda: script)
    assert result.answered and not script.timed_out and script.digits == "1"
    assert ended(pbx, "+8613900007001")
    record = record_of(pbx, "+8613900007001")
    assert record.pressed == "1"
    assert callee_story(record) == f"heard {record.heard_s:.1f} s of prompt, pressed 1"
    assert record.heard_s is not None and 0.3 <= record.heard_s < 3.0
    assert record.recording is not None
    with wave.open(record.recording, "rb") as wav:
        assert wav.getframerate() == 8000 and wav.getnframes() > 0


def test_callee_accepting_refer_reports_200(pbx: SandboxPbx, agent: SipAgent) -> None:
    """REFER to the agent extension: 202, NOTIFY sipfrag 200; the log names the Refer-To target."""
    target = f"sip:advisors@127.0.0.1:{pbx.port}"
    script = ScriptedTest(on_answer_do=lambda ctl: ctl.transfer(target, "refer"),
                          until=lambda s: any(final for _, final in s.transfers))
    result = agent.call(agent.uri_for("+8613900007002"), timeout_s=30, script_factory=lambda: script)
    assert result.answered and script.transfers[-1] == (200, True)
    assert ended(pbx, "+8613900007002")
    transfer = record_of(pbx, "+8613900007002").transfer
    assert transfer is not None and transfer.startswith("accepted") and "advisors" in transfer
    assert callee_story(record_of(pbx, "+8613900007002")).endswith("transferred to advisors")


def test_callee_refusing_refer_gets_the_agent_bridged_instead(pbx: SandboxPbx, agent: SipAgent) -> None:
    """403 to REFER; the script bridges the agent extension through the same account: 200."""
    target = f"sip:advisors@127.0.0.1:{pbx.port}"

    def on_transfer(s: ScriptedTest, status: int, final: bool) -> None:
        if (status, final) == (403, True):
            assert s.ctl is not None
            s.ctl.transfer(target, "bridge")

    script = ScriptedTest(on_answer_do=lambda ctl: ctl.transfer(target, "refer"), on_transfer_do=on_transfer,
                          until=lambda s: (200, True) in s.transfers)
    result = agent.call(agent.uri_for("+8613900007003"), timeout_s=30, script_factory=lambda: script)
    assert result.answered and not script.timed_out
    assert script.transfers[0] == (403, True) and script.transfers[-1] == (200, True)
    assert ended(pbx, "+8613900007003") and ended(pbx, "advisors")
    transfer = record_of(pbx, "+8613900007003").transfer
    assert transfer is not None and transfer.startswith("refused")
    assert record_of(pbx, "advisors").final_code == 200


