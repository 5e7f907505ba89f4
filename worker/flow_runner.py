"""The flow runner: an AnswerScript (worker/sip/answer.py) that drives the pure engine on the SIP thread.

Each callback turns what pjsua2 reported into an engine event, and carries
out the actions the engine returns through the call's MediaControl. Nothing
here blocks: the SIP thread runs every call of the process. The one effect
that needs the database, an opt-out, is handed to ``on_opt_out`` (the job
path queues it to a thread that writes the DNC row at once).

``report()`` becomes ``CallResult.flow``::

    {"steps": [{"step": "offer", "action": "play", "result": "played", "at_s": 3.1, "played_s": 3.1}, ...],
     "outcome": "transferred", "ended_by": "transferred", "first_audio_s": 0.04, "digits": "1",
     "transfer_target": "sip:advisors@pbx", "transfer_status": 200, "recording": null,
     "amd": {"decision": "human", "reason": "human", "decided_at_s": 1.9, "detail": "..."}}  # with an amd step

The listening steps (``amd``, ``voicemail_drop``) get the callee's audio
through :class:`worker.flow_listen.CallListener`; a call whose audio cannot be
tapped takes the step's fallback (``notsure``, which is the human path; the
voicemail message plays at once) and the log's reason says ``no_audio``.
"""

from __future__ import annotations

import logging
import math
import uuid
import wave
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from shared.flow import engine, signals
from shared.flow.listen import Heard, Listen
from shared.flow.model import Flow
from shared.flow.outcome import flow_outcome
from shared.flow.signals import Action, Event
from shared.flow.state import State
from worker.agent.stream_step import SessionFactory, StreamStep, media_streams_session
from worker.flow_listen import CallListener
from worker.sip.answer import MediaControl, MediaError, RecordMode

log = logging.getLogger(__name__)

PLAY_END_SLACK_S = 0.3


class FlowScript:
    """One answered call's flow. Built on the caller's thread; every method then runs on the SIP thread."""

    def __init__(
        self,
        flow: Flow,
        prompts: Mapping[str, str],
        *,
        on_opt_out: Callable[[], None] | None = None,
        recordings_dir: Path | None = None,
        stream_params: Mapping[str, str] | None = None,
        session_factory: SessionFactory = media_streams_session,
    ) -> None:
        self._flow = flow
        self._stream = StreamStep(stream_params or {}, session_factory=session_factory)
        self._prompts = dict(prompts)
        self._on_opt_out = on_opt_out
        self._recordings_dir = recordings_dir
        self._ctl: MediaControl | None = None
        self._now = 0.0
        self._state: State | None = None
        self._playing = False
        self._play_started = 0.0
        self._play_length_s = 0.0
        self._lengths: dict[str, float] = {}
        self._digits: list[str] = []
        self._errors: list[str] = []
        self._listener: CallListener | None = None
        self._queued: list[Event] = []  # events an action caused (a tap that could not be had)

    # ----------------------------------------------------------------- AnswerScript
    def on_answer(self, ctl: MediaControl, now: float) -> None:
        self._ctl = ctl
        self._now = now
        self._listener = CallListener(ctl)
        self._state, actions = engine.start(self._flow, now)
        self._run(actions)
        self._drain_queued()

    def on_tick(self, now: float) -> None:
        self._listen(now)
        for event in self._stream.poll(now):
            self._feed(event)
        if self._playing and self._ctl is not None:
            played_s, finished = self._ctl.play_state()
            # pjmedia's file position can stop short of the end of a file whose data is not a whole number of
            # its read buffers; the wall clock says for sure when the whole prompt has gone out.
            if not finished and now - self._play_started >= self._play_length_s + PLAY_END_SLACK_S:
                played_s, finished = max(played_s, self._play_length_s), True
            self._feed(signals.Tick(now, played_s, finished))
        else:
            self._feed(signals.Tick(now))

    def on_dtmf(self, digit: str, now: float) -> None:
        self._digits.append(digit)
        self._stream.dtmf(digit)  # an agent hears every key; the engine ignores them outside a gather
        self._feed(signals.Digit(digit, now))

    def on_transfer(self, status: int, final: bool, now: float) -> None:
        self._feed(signals.TransferStatus(status, final, now))

    def on_recording(self, path: str | None, error: str | None, now: float) -> None:
        if error:
            self._errors.append(f"recording: {error}")
        self._feed(signals.RecordingResult(path, error, now))

    def on_hangup(self, by: Literal["local", "remote"], now: float) -> None:
        if self._playing and self._ctl is not None:  # the last position, so the log says how much was heard
            played_s, _ = self._ctl.play_state()
            self._feed(signals.Tick(now, played_s, False))
        if self._listener is not None:
            self._listener.hung_up()
        self._feed(signals.HungUp(by, now))
        if self._stream.active:  # the engine stops a live stream on hangup; this only guards a late one
            self._stream.stop()

    def done(self) -> bool:
        return self._state is not None and self._state.done

    def report(self) -> Mapping[str, object]:
        state = self._state
        if state is None:
            return {"steps": [], "outcome": None}
        first_audio = self._ctl.first_audio_sent_s if self._ctl is not None else None
        transfers = [e for e in state.entries if e.action == "transfer"]
        recordings = [e.path for e in state.entries if e.action == "record" and e.path]
        return {
            "steps": [e.to_json() for e in state.entries],
            "outcome": flow_outcome(state, first_audio).value,
            "ended_by": state.ended_by,
            "first_audio_s": None if first_audio is None else round(first_audio, 4),
            "digits": "".join(self._digits),
            "transfer_target": transfers[-1].target if transfers else None,
            "transfer_status": transfers[-1].status if transfers else None,
            "recording": recordings[-1] if recordings else None,
            **self._amd_report(state),
            **({"errors": self._errors} if self._errors else {}),
            **({"agent": streams} if (streams := self._stream.report()) else {}),
        }

    # ----------------------------------------------------------------- engine plumbing
    def _feed(self, event: Event) -> None:
        self._now = event.now
        if self._state is None:
            return
        self._state, actions = engine.step(self._flow, self._state, event)
        self._run(actions)
        self._drain_queued()

    def _drain_queued(self) -> None:
        while self._queued and self._state is not None:
            event = self._queued.pop(0)
            self._state, actions = engine.step(self._flow, self._state, event)
            self._run(actions)

    def _listen(self, now: float) -> None:
        """Feed the callee's audio to the listening step, one settled event at a time."""
        listener, state = self._listener, self._state
        if listener is None or state is None:
            return
        while state is not None and state.phase in ("listening", "waiting_beep"):
            heard = listener.poll(now)
            if heard is None:
                return
            self._feed(heard)
            state = self._state
        listener.discard()

    def _start_listening(self, act: Listen) -> None:
        listener, state = self._listener, self._state
        assert listener is not None and state is not None
        step = self._flow.step(act.step)
        try:
            if act.kind == "amd":
                listener.start_amd(step.params, state.at(self._now))
                early = getattr(self._ctl, "early_media", None)  # a MediaControl without it heard no 183
                if early and early.get("early_media") == "announcement":  # a carrier's media server answered
                    self._queued.append(Heard("machine", "announcement", self._now, state.at(self._now)))
            else:
                listener.start_beep(step.params, state.at(self._now))
        except MediaError as exc:  # no audio to listen to: the fallback, and the log says why
            self._errors.append(f"{act.step}: {exc}")
            what = "notsure" if act.kind == "amd" else "silence"
            self._queued.append(Heard(what, "no_audio", self._now, state.at(self._now)))

    def _amd_report(self, state: State) -> dict[str, object]:
        decided = [e for e in state.entries if e.action == "amd" and e.decision is not None]
        if not decided:
            return {}
        last = decided[-1]
        detail = self._listener.decision if self._listener is not None else None
        return {"amd": {"decision": last.decision, "reason": last.reason, "decided_at_s": last.decided_at_s,
                        "detail": (detail or {}).get("detail")}}

    def _run(self, actions: tuple[Action, ...]) -> None:
        self._apply(actions)
        for act in actions:
            if isinstance(act, Listen):
                self._start_listening(act)

    def _transfer(self, ctl: MediaControl, act: signals.Transfer) -> None:
        """Start a transfer. One that cannot even start (no free call slot for the bridged leg, a URI pjsua
        refuses) fails like a refused one, so the step's on_failure runs: never a person left in silence."""
        try:
            ctl.transfer(act.target, "bridge" if act.mode == "bridge" else "refer")
        except MediaError as exc:
            self._errors.append(f"transfer: {exc}")
            self._queued.append(signals.TransferStatus(503, True, self._now))

    def _apply(self, actions: tuple[Action, ...]) -> None:  # noqa: C901  # one branch per engine action
        ctl = self._ctl
        if ctl is None:
            return
        for act in actions:
            if isinstance(act, signals.Play):
                path = self._prompts[act.step]
                ctl.play(path)
                self._playing, self._play_started, self._play_length_s = True, self._now, self._length(path)
            elif isinstance(act, signals.StopPlay):
                if self._playing:
                    ctl.stop_play()
                self._playing = False
            elif isinstance(act, signals.Transfer):
                self._transfer(ctl, act)
            elif isinstance(act, signals.StartRecording):
                mode: RecordMode = "message" if act.mode == "message" else "call"
                ctl.start_recording(self._recording_path(act.step), mode, act.max_s)
            elif isinstance(act, signals.StopRecording):
                ctl.stop_recording()
            elif isinstance(act, signals.OptOut):
                self._opt_out()
            elif isinstance(act, signals.StartStream):
                self._stream.start(self._flow.step(act.step), ctl, self._now)
            elif isinstance(act, signals.StopStream):
                self._stream.stop()
            elif isinstance(act, signals.Hangup):
                if self._playing:
                    ctl.stop_play()
                    self._playing = False
                ctl.hangup()

    def _length(self, path: str) -> float:
        if path not in self._lengths:
            try:
                with wave.open(path, "rb") as wav:
                    self._lengths[path] = wav.getnframes() / wav.getframerate()
            except (OSError, EOFError, wave.Error):
                self._lengths[path] = math.inf  # unknown length: trust the player alone
        return self._lengths[path]

    def _opt_out(self) -> None:
        if self._on_opt_out is None:
            return
        try:
            self._on_opt_out()  # only queues: never blocks the SIP thread
        except Exception as exc:  # the call goes on; the CDR still says opted_out
            self._errors.append(f"opt_out: {exc}")
            log.error("opt-out could not be queued: %s", exc)

    def _recording_path(self, step: str) -> str:
        folder = self._recordings_dir or Path("recordings")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass  # the recorder reports the failure; the call goes on (recording_failed in the log)
        return str(folder / f"{uuid.uuid4().hex}-{step}.wav")


class _Factory:
    """A fresh script per answered call; ``early_media`` asks the SIP runtime to analyse the 183's audio
    (worker/sip/early_media.py) for flows that start with ``amd``."""

    def __init__(self, flow: Flow, prompts: Mapping[str, str], options: Mapping[str, Any]) -> None:
        self._flow, self._prompts, self._options = flow, prompts, options
        self.early_media = flow.step(flow.start).kind == "amd"

    def __call__(self) -> FlowScript:
        return FlowScript(self._flow, self._prompts, **self._options)


def script_factory(flow: Flow, prompts: Mapping[str, str], **options: Any) -> Callable[[], FlowScript]:
    """What ``CallRequest.script_factory`` wants: a fresh script per answered call."""
    return _Factory(flow, prompts, options)
