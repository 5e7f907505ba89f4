"""The pure flow engine: whole calls as event lists, and properties over arbitrary event orders."""

from __future__ import annotations

import tomllib

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.flow import parse_flow, validate_flow
from shared.flow.engine import start, step
from shared.flow.model import Flow
from shared.flow.outcome import flow_outcome
from shared.flow.signals import (
    Digit,
    Event,
    Hangup,
    HungUp,
    OptOut,
    Play,
    RecordingResult,
    StartRecording,
    StopPlay,
    StopRecording,
    Tick,
    Transfer,
    TransferStatus,
)
from shared.flow.state import State
from shared.outcomes import Outcome
from tests.support.flows import run

MENU = validate_flow(parse_flow(tomllib.loads("""
start = "offer"
max_duration_s = 120
[steps.offer]
play = "offer.wav"
next = "menu"
[steps.menu]
gather = { num_digits = 1, timeout_s = 6 }
say = "Press 1 for an advisor, 9 to stop receiving calls."
branches = { "1" = "agent", "9" = "optout", none = "bye" }
[steps.agent]
transfer = "sip:advisors@127.0.0.1:5060"
on_failure = "sorry"
[steps.sorry]
say = "Nobody is free."
next = "bye"
[steps.optout]
opt_out = true
next = "bye"
[steps.bye]
hangup = true
""")))


def log(state: State) -> list[tuple[str, str]]:
    return [(e.step, e.result) for e in state.entries]


def test_press_1_transfers_after_the_offer() -> None:
    """Offer plays to its end, the menu prompt is interrupted by 1, REFER's 200 ends our part."""
    state, acts = run(MENU, [
        Tick(1.0, 1.0), Tick(3.1, 3.1, True),            # offer played for 3.1 s
        Tick(3.5, 0.4), Digit("1", 3.6),                 # barge-in during the menu prompt
        TransferStatus(100, False, 3.8), TransferStatus(200, True, 4.2),
    ])
    assert acts == [Play("offer"), Play("menu"), StopPlay(), Transfer("sip:advisors@127.0.0.1:5060", "refer"),
                    Hangup()]
    assert log(state) == [("offer", "played"), ("menu", "matched"), ("agent", "transferred")]
    offer, menu, agent = (e.to_json() for e in state.entries)
    assert offer == {"step": "offer", "action": "play", "result": "played", "at_s": 3.1, "played_s": 3.1}
    assert menu["digits"] == "1" and menu["played_s"] == 0.4 and menu["action"] == "gather"
    assert agent["status"] == 200 and agent["target"] == "sip:advisors@127.0.0.1:5060"
    assert state.done and flow_outcome(state, first_audio_s=0.05) is Outcome.TRANSFERRED


def test_press_9_opts_out_and_hangs_up() -> None:
    """9 puts the number on the DNC list (an OptOut action) and the flow hangs up."""
    state, acts = run(MENU, [Tick(2.0, 2.0, True), Digit("9", 2.5)])
    assert OptOut("optout") in acts and acts[-1] == Hangup()
    assert log(state) == [("offer", "played"), ("menu", "matched"), ("optout", "opted_out"), ("bye", "hangup")]
    assert flow_outcome(state, 0.05) is Outcome.OPTED_OUT


def test_nothing_pressed_repeats_once_then_takes_none() -> None:
    """No digit: the menu is said again once, then the `none` branch (bye) hangs up."""
    state, acts = run(MENU, [Tick(2.0, 2.0, True), Tick(4.0, 2.0, True), Tick(10.0), Tick(12.0, 2.0, True),
                             Tick(18.5)])
    assert acts.count(Play("menu")) == 2
    assert log(state) == [("offer", "played"), ("menu", "no_input"), ("menu", "no_input"), ("bye", "hangup")]
    assert state.entries[1].digits == "" and state.done
    assert flow_outcome(state, 0.05) is Outcome.MESSAGE_PLAYED  # the offer was heard; the flow ended itself


def test_failed_transfer_takes_on_failure() -> None:
    """A 403 to REFER logs the status and goes to on_failure; the outcome is transfer_failed."""
    state, _ = run(MENU, [Tick(2.0, 2.0, True), Digit("1", 2.1), TransferStatus(403, True, 2.3),
                          Tick(4.0, 1.5, True)])
    assert log(state)[2:] == [("agent", "failed"), ("sorry", "played"), ("bye", "hangup")]
    assert state.entries[2].status == 403 and flow_outcome(state, 0.05) is Outcome.TRANSFER_FAILED


def test_transfer_with_no_final_status_fails_after_its_timeout() -> None:
    """No NOTIFY at all: after the transfer timeout the step fails with 408."""
    state, _ = run(MENU, [Tick(2.0, 2.0, True), Digit("1", 2.1), Tick(40.0)])
    assert state.entries[2].status == 408 and state.entries[2].result == "failed"


def test_callee_hanging_up_mid_prompt_says_how_much_was_heard() -> None:
    """A remote BYE during the offer logs remote_hangup with played_s; nothing is sent after it."""
    state, acts = run(MENU, [Tick(1.2, 1.2), HungUp("remote", 1.3)])
    assert acts == [Play("offer"), StopPlay()]
    assert state.entries[-1].to_json() == {"step": "offer", "action": "play", "result": "remote_hangup",
                                           "at_s": 1.3, "played_s": 1.2}
    assert state.done and state.ended_by == "remote"


def test_max_duration_ends_any_flow() -> None:
    """At the flow-wide limit the current step is cut and the call hung up."""
    flow = Flow.hold(500)
    flow = Flow(flow.start, flow.steps, max_duration_s=30)
    state, acts = run(flow, [Tick(10.0), Tick(30.0)])
    assert acts == [Hangup()] and log(state) == [("hold", "max_duration")] and state.ended_by == "max_duration"


def test_plain_hold_is_pause_then_hangup_and_abandoned() -> None:
    """A hold flow sends no audio: with the callee still there after 2 s it counts as abandoned."""
    state, acts = run(Flow.hold(3), [Tick(3.0)])
    assert acts == [Hangup()] and log(state) == [("hold", "paused"), ("bye", "hangup")]
    assert flow_outcome(state, first_audio_s=None) is Outcome.ABANDONED


def test_message_played_when_the_flow_ends_after_its_message() -> None:
    """play then end of flow: message_played."""
    flow = validate_flow(parse_flow({"start": "m", "steps": {"m": {"say": "Hello"}}}))
    state, acts = run(flow, [Tick(1.5, 1.5, True)])
    assert acts == [Play("m"), Hangup()] and flow_outcome(state, 0.1) is Outcome.MESSAGE_PLAYED


def test_digit_flood_takes_the_first_digits_only() -> None:
    """50 digits in a second: the gather takes what it asked for; the rest change nothing."""
    flow = validate_flow(parse_flow({"start": "g", "steps": {
        "g": {"gather": {"num_digits": 3, "finish_on_key": "#"}, "say": "code", "next": "bye"},
        "bye": {"hangup": True}}}))
    state, _ = run(flow, [Digit(str(i % 10), 0.1 + i / 50) for i in range(50)])
    assert state.entries[0].digits == "012" and log(state) == [("g", "gathered"), ("bye", "hangup")]


def test_a_key_pressed_during_the_offer_answers_the_menu() -> None:
    """Type-ahead: 1 pressed during the offer is taken by the menu at once; its prompt never plays."""
    state, acts = run(MENU, [Tick(1.0, 1.0), Digit("1", 1.1), Tick(3.0, 3.0, True)])
    assert acts == [Play("offer"), Transfer("sip:advisors@127.0.0.1:5060", "refer")]
    assert log(state) == [("offer", "played"), ("menu", "matched")] and state.entries[1].digits == "1"


def test_finish_on_key_ends_the_gather_early() -> None:
    """`#` ends the input and is not part of the digits."""
    flow = validate_flow(parse_flow({"start": "g", "steps": {
        "g": {"gather": {"num_digits": 6, "finish_on_key": "#"}, "branches": {"42": "bye"}},
        "bye": {"hangup": True}}}))
    state, _ = run(flow, [Digit("4", 1.0), Digit("2", 1.2), Digit("#", 1.4)])
    assert state.entries[0].digits == "42" and log(state)[0] == ("g", "matched")


def test_recording_a_message_waits_for_the_file() -> None:
    """record message: start, then the result (path) is logged and the flow goes on."""
    flow = validate_flow(parse_flow({"start": "r", "steps": {
        "r": {"record": "message", "max_s": 10, "next": "bye"}, "bye": {"hangup": True}}}))
    state, acts = run(flow, [Tick(10.0), RecordingResult("/rec/a.wav", None, 10.1)])
    assert acts == [StartRecording("r", "message", 10.0), StopRecording(), Hangup()]
    assert state.entries[0].to_json()["path"] == "/rec/a.wav" and log(state)[0] == ("r", "recorded")


def test_a_failed_call_recording_does_not_stop_the_call() -> None:
    """record call runs beside the flow; a recorder error is logged recording_failed and the flow goes on."""
    flow = validate_flow(parse_flow({"start": "r", "steps": {
        "r": {"record": "call", "next": "m"}, "m": {"say": "hello"}}}))
    state, _ = run(flow, [RecordingResult(None, "disk full", 0.2), Tick(2.0, 2.0, True)])
    assert log(state) == [("r", "started"), ("r", "recording_failed"), ("m", "played")] and state.done


EVENTS = st.one_of(
    st.builds(Tick, st.floats(0, 200), st.none() | st.floats(0, 60), st.booleans()),
    st.builds(Digit, st.sampled_from("0123456789*#"), st.floats(0, 200)),
    st.builds(TransferStatus, st.sampled_from([100, 180, 200, 202, 403, 486, 503]), st.booleans(),
              st.floats(0, 200)),
    st.builds(RecordingResult, st.none() | st.just("/r.wav"), st.none() | st.just("full"), st.floats(0, 200)),
    st.builds(HungUp, st.sampled_from(["local", "remote"]), st.floats(0, 200)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(EVENTS, max_size=40))
def test_any_event_order_keeps_the_invariants(events: list[Event]) -> None:
    """Whatever arrives, in time order: at most one Hangup, nothing after the end, log times never go back."""
    events = sorted(events, key=lambda e: e.now)
    state, acts = start(MENU, 0.0)
    hangups = acts.count(Hangup())
    for event in events:
        was_done = state.phase == "done"
        state, acts = step(MENU, state, event)
        hangups += acts.count(Hangup())
        if was_done:
            assert acts == ()
        for act in acts:
            if isinstance(act, Play):
                assert MENU.steps[act.step].prompt_kind is not None
    assert hangups <= 1
    times = [e.at_s for e in state.entries]
    assert times == sorted(times)
    state, _ = step(MENU, state, Tick(10_000.0))
    assert state.phase == "done"
    assert flow_outcome(state, 0.1) in Outcome
