"""The flow engine: ``(state, event) -> (state, actions)``, pure.

The runner on the SIP thread turns pjsua2 callbacks into :data:`Event` values
and carries out the returned :data:`Action` values through its media control
(both in :mod:`shared.flow.signals`; the state in :mod:`shared.flow.state`);
this module decides, and knows nothing of SIP. States are small frozen
dataclasses, so a test drives a whole call with a list of events and compares
what came out, and hypothesis can throw arbitrary event orders at it.

One step at a time, in phases::

    between    moving on from a step that has finished (nothing plays)
    playing    a play/say prompt (or a gather's prompt) is being sent
    gathering  waiting for digits; the first digit stops the prompt (barge-in)
    pausing    a pause step's timer
    transfer   REFER / bridge sent, waiting for its final status
    bridged    the agent's leg is joined; the call ends when someone hangs up
    recording  a "message" recording, until it reports or max_s passes
    streaming  an AI agent has the call (a stream step) until it hangs up, asks for a transfer, or goes
    done       the flow is over (we hung up, or the callee did)

Keys pressed while a play/say step (or a pause) runs are kept as type-ahead:
the next gather takes them at once instead of playing its prompt, as a
customer who presses 1 during the offer expects.

Every step taken becomes a :class:`Entry` of the flow log, with its time
since answer; play/say entries say how much was heard, gather entries the
digits, transfer entries the final status.
"""

from __future__ import annotations

from dataclasses import replace

from shared.flow import listen
from shared.flow.listen import Heard
from shared.flow.model import Flow, Step
from shared.flow.signals import (
    Action,
    Digit,
    Event,
    Hangup,
    HungUp,
    OptOut,
    Play,
    RecordingResult,
    StartRecording,
    StartStream,
    StopPlay,
    StopRecording,
    StopStream,
    StreamEvent,
    Tick,
    Transfer,
    TransferStatus,
)
from shared.flow.state import EndedBy, Entry, State

TRANSFER_TIMEOUT_S = 30.0  # no final NOTIFY / agent answer by then: the transfer failed (408)
RECORDING_GRACE_S = 3.0  # a stopped recorder reports within this, or the recording failed
STREAM_OPEN_TIMEOUT_S = 5.0  # the agent's WebSocket not open by then: the agent is unavailable
MAX_TYPEAHEAD = 32  # keys kept from prompts before a gather (a flood keeps only the last ones)

Result = tuple[State, tuple[Action, ...]]


def start(flow: Flow, now: float) -> Result:
    """The call was answered at ``now``: enter the flow's first step."""
    state = State(answered_at=now, step=flow.start, phase="playing")
    return _enter(flow, state, flow.start, now, ())


def step(flow: Flow, state: State, event: Event) -> Result:
    """Apply one event."""
    if isinstance(event, RecordingResult):
        return _recording(flow, state, event)
    if state.phase == "done":
        return _after_end(state, event)
    if isinstance(event, HungUp):
        if state.phase == "bridged":  # the transfer is already logged; the agent's call simply ended
            return _end(state, event.now, "remote", None, ())
        return _end_step(state, flow.step(state.step), event.now, "remote", "remote_hangup")
    if isinstance(event, Tick) and state.phase == "streaming" and state.deadline is not None \
            and event.now >= state.deadline and event.now - state.answered_at < flow.max_duration_s:
        return _stream(flow, state, StreamEvent("failed", event.now, detail="the agent did not answer in time"))
    if isinstance(event, Tick):
        return _tick(flow, state, event)
    if isinstance(event, Digit):
        return _digit(flow, state, event)
    if isinstance(event, Heard):
        return listen.heard(flow, state, event)
    if isinstance(event, StreamEvent):
        return _stream(flow, state, event)
    return _transfer(flow, state, event)


# --------------------------------------------------------------------------------------------- moves
def _log(state: State, current: Step, result: str, now: float, **extra: object) -> State:
    action = current.kind
    if current.prompt_kind is not None:
        extra.setdefault("played_s", state.played_s)
    if action == "gather":
        extra.setdefault("digits", state.digits)
    if action == "stream" and state.phase == "transfer":  # the agent's transfer, logged as a transfer
        action = "transfer"
        extra.setdefault("target", state.agent_target)
    elif action == "stream":
        result_obj = state.agent_result
        disposition = result_obj.get("disposition") if result_obj is not None else None
        extra.setdefault("agent_result", result_obj)
        extra.setdefault("disposition", disposition if isinstance(disposition, str) else None)
    if action == "transfer":
        extra.setdefault("target", current.target)
    if action == "voicemail_drop":
        extra.setdefault("heard", state.heard)
    if action == "amd":  # ended before a verdict (hang-up, max duration): notsure, as the detector's finish() says
        extra.setdefault("decision", "notsure")
        extra.setdefault("reason", "ended")
        extra.setdefault("decided_at_s", state.at(now))
    entry = Entry(step=current.id, action=action, result=result, at_s=state.at(now), **extra)  # type: ignore[arg-type]
    return replace(state, entries=(*state.entries, entry))


def _enter(flow: Flow, state: State, sid: str | None, now: float, acts: tuple[Action, ...], hops: int = 0) -> Result:
    """Start step ``sid`` (None: the flow is over, hang up). Immediate steps chain on."""
    if sid is None or hops > len(flow.steps):
        return _end(state, now, "flow", None, acts)
    cur = flow.step(sid)
    state = replace(state, step=sid, deadline=None, digits="", played_s=0.0,
                    tries=state.tries if sid == state.step else 0)
    if cur.kind == "gather" and state.typeahead:  # keys pressed early answer this gather at once
        assert cur.gather is not None
        keys = state.typeahead
        state = replace(state, phase="gathering", deadline=now + cur.gather.timeout_s, typeahead="")
        for key in keys:
            state, more = step(flow, state, Digit(key, now))
            acts = (*acts, *more)
        return state, acts
    if cur.kind in listen.KINDS:
        return listen.enter(flow, state, cur, now, acts)
    if cur.kind in ("play", "say") or (cur.kind == "gather" and cur.prompt_kind is not None):
        return replace(state, phase="playing"), (*acts, Play(sid))
    if cur.kind == "gather":
        assert cur.gather is not None
        return replace(state, phase="gathering", deadline=now + cur.gather.timeout_s), acts
    if cur.kind in ("pause", "transfer", "stream"):
        return _wait_on(state, cur, now, acts)
    if cur.kind == "record":
        rec = StartRecording(sid, cur.mode, cur.max_s)
        if cur.mode == "message":
            return replace(state, phase="recording", deadline=now + cur.max_s), (*acts, rec)
        state = replace(_log(state, cur, "started", now), recording_step=sid)
        return _enter(flow, state, cur.next, now, (*acts, rec), hops + 1)
    if cur.kind == "opt_out":
        state = _log(state, cur, "opted_out", now)
        return _enter(flow, state, cur.next, now, (*acts, OptOut(sid)), hops + 1)
    state = _log(state, cur, "hangup", now)  # hangup
    return _end(state, now, "flow", None, acts)


def _wait_on(state: State, cur: Step, now: float, acts: tuple[Action, ...]) -> Result:
    """Enter a step that waits on the world: a pause's timer, a transfer's result, an agent's stream."""
    if cur.kind == "pause":
        return replace(state, phase="pausing", deadline=now + cur.pause_s), acts
    if cur.kind == "transfer":
        return replace(state, phase="transfer", deadline=now + TRANSFER_TIMEOUT_S), (*acts, Transfer(cur.target,
                                                                                                      cur.mode))
    state = replace(state, phase="streaming", deadline=now + STREAM_OPEN_TIMEOUT_S, agent_result=None)
    return state, (*acts, StartStream(cur.id))


def _end(state: State, now: float, by: EndedBy, result: str | None, acts: tuple[Action, ...],
         flow_step: Step | None = None) -> Result:
    """Close the flow: log the interrupted step (when ``result``), stop what runs, hang up unless remote did."""
    if result is not None and flow_step is not None:
        state = _log(state, flow_step, result, now)
    stops: list[Action] = []
    if state.phase == "playing":
        stops.append(StopPlay())
    if state.phase == "streaming":
        stops.append(StopStream())
    if state.phase == "recording" or state.recording_step is not None:
        stops.append(StopRecording())
    if by != "remote":
        stops.append(Hangup())
    if state.phase in ("recording", "stopping"):
        state = replace(state, recording_step=state.step)
    deadline = now + RECORDING_GRACE_S if state.recording_step is not None else None
    return replace(state, phase="done", ended_by=by, ended_at=now, deadline=deadline), (*acts, *stops)


def _tick(flow: Flow, state: State, ev: Tick) -> Result:  # noqa: C901  # one branch per phase
    cur = flow.step(state.step)
    if ev.now - state.answered_at >= flow.max_duration_s:
        return _end_step(state, cur, ev.now, "max_duration", "max_duration")
    if state.phase == "playing":
        if ev.played_s is not None:
            state = replace(state, played_s=max(state.played_s, ev.played_s))
        if not ev.play_finished:
            return state, ()
        if cur.kind == "gather":
            assert cur.gather is not None
            return replace(state, phase="gathering", deadline=ev.now + cur.gather.timeout_s), ()
        state = replace(_log(state, cur, "played", ev.now), phase="between")  # the prompt is over
        return _enter(flow, state, cur.next, ev.now, ())
    if state.deadline is None or ev.now < state.deadline:
        return state, ()
    if state.phase == "gathering":
        return _gathered(flow, state, cur, ev.now)
    if state.phase in listen.PHASES:
        return listen.expired(flow, state, cur, ev.now)
    if state.phase == "pausing":
        return _enter(flow, _log(state, cur, "paused", ev.now), cur.next, ev.now, ())
    if state.phase == "transfer":
        return _enter(flow, _log(state, cur, "failed", ev.now, status=408), cur.on_failure, ev.now, ())
    if state.phase == "recording":  # max_s reached: stop, and wait for the file
        return replace(state, phase="stopping", deadline=ev.now + RECORDING_GRACE_S), (StopRecording(),)
    if state.phase == "stopping":
        state = _log(state, cur, "recording_failed", ev.now)
        return _enter(flow, state, cur.next, ev.now, ())
    return state, ()


def _end_step(state: State, cur: Step, now: float, by: EndedBy, result: str) -> Result:
    return _end(state, now, by, result, (), flow_step=cur)


def _digit(flow: Flow, state: State, ev: Digit) -> Result:
    if state.phase == "listening":
        return listen.digit(flow, state, ev)
    cur = flow.step(state.step)
    if cur.kind != "gather" and state.phase in ("playing", "between", "pausing"):
        return replace(state, typeahead=(state.typeahead + ev.digit)[-MAX_TYPEAHEAD:]), ()
    if cur.kind != "gather" or state.phase not in ("playing", "gathering"):
        return state, ()  # a key pressed during a transfer or recording changes nothing
    assert cur.gather is not None
    acts: tuple[Action, ...] = ()
    if state.phase == "playing":  # barge-in
        state, acts = replace(state, phase="gathering"), (StopPlay(),)
    if cur.gather.finish_on_key and ev.digit == cur.gather.finish_on_key:
        state, more = _gathered(flow, state, cur, ev.now)
        return state, (*acts, *more)
    state = replace(state, digits=state.digits + ev.digit, deadline=ev.now + cur.gather.timeout_s)
    if len(state.digits) >= cur.gather.num_digits:
        state, more = _gathered(flow, state, cur, ev.now)
        return state, (*acts, *more)
    return state, acts


def _gathered(flow: Flow, state: State, cur: Step, now: float) -> Result:
    assert cur.gather is not None
    digits = state.digits
    target = cur.branches.get(digits) if digits else None
    if target is not None or (digits and not cur.branches):
        state = _log(state, cur, "matched" if target else "gathered", now, digits=digits)
        return _enter(flow, state, target or cur.next, now, ())
    word = "no_match" if digits else "no_input"
    state = _log(state, cur, word, now, digits=digits)
    if state.tries < cur.gather.repeat:
        state = replace(state, tries=state.tries + 1)
        return _enter(flow, state, cur.id, now, ())
    return _enter(flow, state, cur.branches.get("none", cur.next), now, ())


def _transfer(flow: Flow, state: State, ev: TransferStatus) -> Result:
    cur = flow.step(state.step)
    if state.phase != "transfer" or not ev.final:
        return state, ()
    if 200 <= ev.status < 300:
        state = _log(state, cur, "transferred", ev.now, status=ev.status)
        if cur.mode == "bridge":  # the two legs talk until one hangs up
            return replace(state, phase="bridged", deadline=None), ()
        return _end(state, ev.now, "transferred", None, ())
    state = _log(state, cur, "failed", ev.now, status=ev.status)
    return _enter(flow, state, cur.on_failure, ev.now, ())


def _stream(flow: Flow, state: State, ev: StreamEvent) -> Result:
    """The agent's side of a stream step. Unavailable or dropped: ``on_failure``; hangup ends; transfer transfers."""
    cur = flow.step(state.step)
    if state.phase != "streaming" or cur.kind != "stream":
        return state, ()  # late news from a stream already left behind
    if ev.kind == "opened":
        return replace(state, deadline=None), ()
    if ev.kind == "result":
        return replace(state, agent_result=ev.result), ()
    if ev.kind == "transfer" and not ev.target:
        return state, ()
    if ev.kind == "hangup":
        return _end(_log(state, cur, "hangup", ev.now), ev.now, "flow", None, ())  # _end stops the stream
    stop: tuple[Action, ...] = (StopStream(),)
    if ev.kind == "transfer":
        state = _log(state, cur, "transfer_requested", ev.now, target=ev.target)
        state = replace(state, phase="transfer", agent_target=ev.target, deadline=ev.now + TRANSFER_TIMEOUT_S)
        return state, (*stop, Transfer(str(ev.target), cur.mode or "refer"))
    if ev.kind == "failed":
        state = _log(state, cur, "agent_unavailable", ev.now, detail=ev.detail or None)
        following = cur.on_failure or cur.next
    elif ev.detail.startswith("dropped"):  # the agent went mid-call: the fallback (a human, a message)
        state = _log(state, cur, "agent_lost", ev.now, detail=ev.detail)
        following = cur.on_failure or cur.next
    else:
        state, following = _log(state, cur, "completed", ev.now), cur.next
    return _enter(flow, replace(state, phase="between"), following, ev.now, stop)


def _recording(flow: Flow, state: State, ev: RecordingResult) -> Result:
    rec_step = state.recording_step or (state.step if state.phase in ("recording", "stopping") else None)
    if rec_step is None:
        return state, ()
    cur = flow.step(rec_step)
    result = "recorded" if ev.path and not ev.error else "recording_failed"
    state = _log(state, cur, result, ev.now, path=ev.path)
    if state.phase in ("recording", "stopping"):
        return _enter(flow, replace(state, recording_step=None), cur.next, ev.now, ())
    return replace(state, recording_step=None), ()


def _after_end(state: State, event: Event) -> Result:
    """After the end only the recording grace runs out."""
    if isinstance(event, Tick) and state.recording_step is not None and state.deadline is not None \
            and event.now >= state.deadline:
        return replace(state, recording_step=None, deadline=None), ()
    return state, ()
