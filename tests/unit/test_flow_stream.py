"""The `stream` step: parsing, and the engine's handling of an AI agent's events (pure)."""

from __future__ import annotations

import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.flow import parse_flow, validate_flow
from shared.flow.engine import start, step
from shared.flow.model import Flow, FlowError
from shared.flow.outcome import flow_outcome
from shared.flow.signals import (
    Hangup,
    HungUp,
    Play,
    StartStream,
    StopStream,
    StreamEvent,
    Tick,
    Transfer,
    TransferStatus,
)
from shared.flow.state import State
from shared.outcomes import Outcome

AGENT = validate_flow(parse_flow(tomllib.loads("""
start = "agent"
[steps.agent]
stream = { url = "ws://127.0.0.1:8765/agent", token_env = "AGENT_TOKEN" }
on_failure = "sorry"
[steps.sorry]
say = "Our assistant is unavailable, we will call you back."
""")))


def run(events: list[object]) -> tuple[State, list[object]]:
    state, acts = start(AGENT, 0.0)
    out: list[object] = list(acts)
    for ev in events:
        state, acts = step(AGENT, state, ev)  # type: ignore[arg-type]
        out.extend(acts)
    return state, out


def test_stream_step_parses_and_round_trips() -> None:
    """url, token_env (a variable's name) and the transfer mode are kept and survive the stored form."""
    agent = AGENT.step("agent")
    assert (agent.kind, agent.url, agent.token_env, agent.mode, agent.on_failure) == \
        ("stream", "ws://127.0.0.1:8765/agent", "AGENT_TOKEN", "refer", "sorry")
    assert Flow.from_json(AGENT.to_json()) == AGENT


@pytest.mark.parametrize(("body", "words"), [
    ('stream = { url = "http://x/agent" }', "ws:// or wss://"),
    ('stream = { url = "ws://x/agent", token = "abc" }', "unknown key 'token'"),
    ('stream = { url = "ws://x/agent", token_env = "not a name" }', "token_env"),
    ('stream = { url = "ws://x/agent" }\nmode = "fax"', "mode 'fax'"),
])
def test_bad_stream_steps_name_the_problem(body: str, words: str) -> None:
    """A wrong URL scheme, a literal token, a bad variable name or mode: one FlowError naming it."""
    with pytest.raises(FlowError, match="step 'a'") as err:
        parse_flow(tomllib.loads(f'start = "a"\n[steps.a]\n{body}\n'))
    assert words in str(err.value)


def test_agent_result_and_hangup_end_the_call_with_the_disposition() -> None:
    """The agent's result is kept; its hangup ends the flow; the entry carries result, disposition, agent_result."""
    result = {"disposition": "interested", "notes": "call back Tuesday"}
    state, acts = run([StreamEvent("opened", 0.5), StreamEvent("result", 9.0, result=result),
                       StreamEvent("hangup", 9.1)])
    assert acts == [StartStream("agent"), StopStream(), Hangup()]
    entry = state.entries[-1].to_json()
    assert (entry["action"], entry["result"], entry["disposition"]) == ("stream", "hangup", "interested")
    assert entry["agent_result"] == result
    assert state.done and flow_outcome(state, 0.6) == Outcome.ANSWERED


def test_unreachable_agent_takes_on_failure_and_the_outcome_says_so() -> None:
    """A failed open logs agent_unavailable and plays the fallback message: never a silent call."""
    state, acts = run([StreamEvent("failed", 0.2, detail="ws://127.0.0.1:8765/agent: ConnectionRefusedError")])
    assert acts == [StartStream("agent"), StopStream(), Play("sorry")]
    assert state.entries[0].result == "agent_unavailable" and "Refused" in (state.entries[0].detail or "")
    assert flow_outcome(state, 0.3) == Outcome.AGENT_UNAVAILABLE


def test_agent_that_never_answers_times_out_into_on_failure() -> None:
    """No opened event within the open timeout: the same fallback as a refused connection."""
    state, acts = run([Tick(2.0), Tick(5.5)])
    assert acts[-1] == Play("sorry") and state.entries[0].result == "agent_unavailable"


def test_dropped_agent_takes_on_failure_and_a_clean_close_moves_on() -> None:
    """A WebSocket dropped mid-call is agent_lost (fallback); a clean close is completed (next: none, hang up)."""
    state, acts = run([StreamEvent("opened", 0.1), StreamEvent("ended", 20.0, detail="dropped: close code 1006")])
    assert state.entries[0].result == "agent_lost" and acts[-1] == Play("sorry")
    state, acts = run([StreamEvent("opened", 0.1), StreamEvent("ended", 20.0, detail="closed")])
    assert state.entries[0].result == "completed" and acts[-1] == Hangup() and state.done


def test_agent_transfer_reuses_the_transfer_machinery() -> None:
    """The agent asks for a human: the stream stops, a REFER goes to its target, the outcome is transferred."""
    state, acts = run([StreamEvent("opened", 0.1), StreamEvent("result", 5.0, result={"disposition": "transfer"}),
                       StreamEvent("transfer", 5.1, target="sip:sales@pbx.example"),
                       TransferStatus(200, True, 6.0)])
    assert acts == [StartStream("agent"), StopStream(), Transfer("sip:sales@pbx.example", "refer"), Hangup()]
    assert [(e.action, e.result) for e in state.entries] == [("stream", "transfer_requested"),
                                                              ("transfer", "transferred")]
    assert state.entries[1].target == "sip:sales@pbx.example"
    assert flow_outcome(state, 0.5) == Outcome.TRANSFERRED


def test_callee_hanging_up_while_the_agent_talks() -> None:
    """The callee hangs up mid-stream: the stream stops (no BYE from us) and the disposition so far is kept."""
    state, acts = run([StreamEvent("opened", 0.1), StreamEvent("result", 2.0, result={"disposition": "busy"}),
                       HungUp("remote", 3.0)])
    assert acts == [StartStream("agent"), StopStream()]
    assert state.entries[-1].result == "remote_hangup" and state.entries[-1].disposition == "busy"


@given(st.lists(st.one_of(
    st.builds(StreamEvent, st.sampled_from(["opened", "failed", "result", "transfer", "hangup", "ended"]),
              st.floats(0, 50), st.just({"disposition": "x"}), st.sampled_from([None, "sip:a@b"]),
              st.sampled_from(["", "closed", "dropped: 1006"])),
    st.builds(Tick, st.floats(0, 400)), st.builds(HungUp, st.just("remote"), st.floats(0, 400)),
), max_size=12))
def test_any_order_of_agent_events_is_safe(events: list[object]) -> None:
    """Whatever the agent and the callee do, in any order, the engine never raises and streams stop once."""
    _, acts = run(sorted(events, key=lambda e: e.now))  # type: ignore[attr-defined]
    assert sum(isinstance(a, StopStream) for a in acts) <= 1
