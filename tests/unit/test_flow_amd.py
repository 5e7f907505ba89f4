"""The listening flow steps, pure: amd branches by decision, voicemail_drop waits for the box, outcomes follow."""

from __future__ import annotations

import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.flow import FlowError, parse_flow, validate_flow
from shared.flow.engine import start, step
from shared.flow.listen import Heard, Listen
from shared.flow.model import Flow
from shared.flow.outcome import flow_outcome
from shared.flow.signals import Digit, Event, Hangup, HungUp, Play, Tick
from shared.outcomes import MACHINE_OUTCOMES, RETRYABLE_OUTCOMES, Outcome
from shared.retry_policy import RetryPolicy
from tests.support.flows import run

AMD = validate_flow(parse_flow(tomllib.loads("""
start = "detect"
[steps.detect]
amd = {}
branches = { human = "offer", machine = "drop" }
[steps.offer]
play = "offer.wav"
next = "bye"
[steps.drop]
voicemail_drop = { max_wait_s = 15 }
say = "Please call us back."
next = "bye"
[steps.bye]
hangup = true
""")))


def test_human_takes_the_human_branch_and_the_entry_says_why() -> None:
    """HUMAN at 1.9 s: the offer plays; the amd entry carries decision, reason and decided_at_s."""
    state, acts = run(AMD, [Heard("human", "human", 2.0, 1.9), Tick(5.0, 3.0, True)])
    assert acts == [Listen("detect", "amd"), Play("offer"), Hangup()]
    entry = state.entries[0].to_json()
    assert entry == {"step": "detect", "action": "amd", "result": "human", "at_s": 2.0, "decision": "human",
                     "reason": "human", "decided_at_s": 1.9}
    assert flow_outcome(state, first_audio_s=2.05) is Outcome.MESSAGE_PLAYED  # 2 s count from the decision


def test_notsure_goes_where_a_human_goes() -> None:
    """Without a notsure branch, NOTSURE takes the human path: nobody is hung up on for a doubt."""
    state, acts = run(AMD, [Heard("notsure", "initial_silence", 2.6, 2.5)])
    assert acts[-1] == Play("offer") and state.step == "offer"


def test_the_step_is_bounded_when_no_audio_arrives() -> None:
    """No decision within total_analysis_ms + 1 s: notsure/timeout, and the human path."""
    state, acts = run(AMD, [Tick(5.9), Tick(6.0)])
    assert state.entries[0].decision == "notsure" and state.entries[0].reason == "timeout"
    assert acts[-1] == Play("offer")


def test_machine_then_beep_leaves_the_message() -> None:
    """MACHINE, then the beep ends at 9.5 s: the message plays then, and the outcome is voicemail_left."""
    state, acts = run(AMD, [Heard("machine", "long_greeting", 2.0, 1.6), Tick(5.0), Heard("beep", "beep", 9.5, 9.5),
                            Tick(12.0, 2.5, True)])
    assert acts == [Listen("detect", "amd"), Listen("drop", "beep"), Play("drop"), Hangup()]
    drop = state.entries[1].to_json()
    assert drop["action"] == "voicemail_drop" and drop["result"] == "played" and drop["heard"] == "beep"
    assert flow_outcome(state, first_audio_s=9.6) is Outcome.VOICEMAIL_LEFT


def test_a_beep_decision_plays_at_once() -> None:
    """When the detector decided on the beep itself, the box records already: no second wait."""
    _, acts = run(AMD, [Heard("machine", "beep", 8.0, 8.0)])
    assert acts[-1] == Play("drop")


def test_the_wait_for_the_beep_is_bounded() -> None:
    """No beep and no silence within max_wait_s: the message plays anyway (heard = timeout)."""
    state, acts = run(AMD, [Heard("machine", "max_words", 2.0, 2.0), Tick(16.9), Tick(17.0)])
    assert acts[-1] == Play("drop") and state.heard == "timeout"


def test_machine_without_a_message_is_retried_later() -> None:
    """A machine branch that hangs up gives outcome machine: retried (2 h), never counted as a person."""
    flow = validate_flow(parse_flow({"start": "d", "steps": {
        "d": {"amd": {"greeting_ms": 2000}, "branches": {"human": "o", "machine": "bye"}},
        "o": {"play": "o.wav"}, "bye": {"hangup": True}}}))
    state, _ = run(flow, [Heard("machine", "long_greeting", 2.2, 2.1)])
    assert flow_outcome(state, None) is Outcome.MACHINE
    assert Outcome.MACHINE in RETRYABLE_OUTCOMES
    assert Outcome.VOICEMAIL_LEFT not in RETRYABLE_OUTCOMES
    assert MACHINE_OUTCOMES == {Outcome.MACHINE, Outcome.VOICEMAIL_LEFT}
    assert RetryPolicy().delay_for(Outcome.MACHINE).total_seconds() == 7200


def test_callee_hangs_up_while_listening() -> None:
    """The machine hangs up mid-greeting: the amd step is logged remote_hangup; the outcome is plain answered."""
    state, _ = run(AMD, [HungUp("remote", 1.0)])
    assert [(e.action, e.result) for e in state.entries] == [("amd", "remote_hangup")]
    assert (state.entries[0].decision, state.entries[0].reason) == ("notsure", "ended")
    assert state.done and flow_outcome(state, None) is Outcome.ANSWERED


def test_a_key_pressed_while_listening_is_a_person() -> None:
    """Machines do not press keys: DTMF during amd is HUMAN (dtmf), and the key reaches the human path."""
    flow = validate_flow(parse_flow({"start": "d", "steps": {
        "d": {"amd": {}, "branches": {"human": "menu", "machine": "bye"}},
        "menu": {"gather": {"num_digits": 1}, "play": "menu.wav", "branches": {"1": "bye"}},
        "bye": {"hangup": True}}}))
    state, _ = run(flow, [Digit("1", 1.2)])
    assert (state.entries[0].decision, state.entries[0].reason) == ("human", "dtmf")
    assert [(e.step, e.result, e.digits) for e in state.entries[1:]] == [("menu", "matched", "1"),
                                                                         ("bye", "hangup", None)]


def test_settings_round_trip_through_the_stored_form() -> None:
    """amd parameters and voicemail_drop settings survive Flow.to_json / from_json."""
    flow = validate_flow(parse_flow({"start": "d", "steps": {
        "d": {"amd": {"greeting_ms": 2000, "initial_silence_decision": "human"}, "next": "v"},
        "v": {"voicemail_drop": {"greeting_end_ms": 2000}, "play": "m.wav"}}}))
    again = Flow.from_json(flow.to_json())
    assert again == flow and again.step("d").params["greeting_ms"] == 2000


@pytest.mark.parametrize(("steps", "message"), [
    ({"d": {"amd": {"greting_ms": 1}, "next": "b"}, "b": {"hangup": True}}, "unknown key 'greting_ms'"),
    ({"d": {"amd": {"greeting_ms": -1}, "next": "b"}, "b": {"hangup": True}}, "greeting_ms must be >= 0"),
    ({"d": {"amd": {}, "branches": {"machine": "b"}}, "b": {"hangup": True}}, "give the human branch"),
    ({"d": {"amd": {}, "branches": {"1": "b"}, "next": "b"}, "b": {"hangup": True}}, "human, machine or notsure"),
    ({"d": {"voicemail_drop": True}}, "needs its message"),
    ({"d": {"voicemail_drop": {"max_wait_s": 0}, "play": "m.wav"}}, "max_wait_s must be 1-120"),
])
def test_bad_listening_steps_are_refused_by_name(steps: dict[str, object], message: str) -> None:
    """Each mistake is one FlowError naming the step and what to write instead."""
    with pytest.raises(FlowError, match=message) as err:
        validate_flow(parse_flow({"start": "d", "steps": steps}))
    assert "step 'd'" in str(err.value)


LISTEN_EVENTS = st.one_of(
    st.builds(Tick, st.floats(0, 60), st.none() | st.floats(0, 10), st.booleans()),
    st.builds(Digit, st.sampled_from("019#"), st.floats(0, 60)),
    st.builds(HungUp, st.sampled_from(["local", "remote"]), st.floats(0, 60)),
    st.builds(Heard, st.sampled_from(["human", "machine", "notsure", "beep", "silence", "bogus"]),
              st.sampled_from(["human", "beep", "max_words", "timeout"]), st.floats(0, 60),
              st.none() | st.floats(0, 60)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(LISTEN_EVENTS, max_size=30))
def test_a_person_is_never_hung_up_on_for_a_doubt(events: list[Event]) -> None:
    """Whatever arrives, in time order: a human or notsure verdict always leads to the offer (never the drop or
    a hang-up), the message plays only after a machine verdict, and at most one Hangup is sent."""
    events = sorted(events, key=lambda e: e.now)
    state, acts = start(AMD, 0.0)
    out = list(acts)
    for event in events:
        state, acts = step(AMD, state, event)
        out.extend(acts)
    assert out.count(Hangup()) <= 1
    amd = [e for e in state.entries if e.action == "amd"]
    assert len(amd) <= 1
    if amd and amd[0].decision in ("human", "notsure") and amd[0].result != "remote_hangup":
        assert Play("drop") not in out and (len(state.entries) == 1 or state.entries[1].step == "offer")
    if Play("drop") in out:
        assert amd and amd[0].decision == "machine"
    state, _ = step(AMD, state, Tick(10_000.0))
    assert state.phase == "done" and flow_outcome(state, 0.1) in Outcome
