"""What an answered call's flow achieved, as one business outcome (pure).

Precedence, first match wins: an opt-out (the person asked never to be
called again, whatever else happened), an AI agent that could not be
reached (the fallback ran; the log says what it did), a transfer that succeeded, a transfer
that failed, a voicemail message left (``voicemail_left``: a
``voicemail_drop`` step played its message), a machine (the ``amd`` step said
so, and the flow left no message), an abandoned call (nothing sent within 2 s
of the answer while the person stayed on: regulators cap these at 3% per
campaign), a flow that ended on its own after playing its message, and
otherwise plain ``answered`` (the callee hung up mid-flow; the log says how
much was heard).

With an ``amd`` step the 2 s run from the human decision, not from the
answer: the rules count from the end of the person's greeting ("Hello?" and
the pause after it), which is the moment the detector decides HUMAN.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.flow.state import Entry, State
from shared.outcomes import Outcome

ABANDON_AFTER_S = 2.0


def is_abandoned(first_audio_s: float | None, ended_at_s: float | None) -> bool:
    """No audio within 2 s of the answer, and the callee was still there at 2 s."""
    if first_audio_s is not None and first_audio_s <= ABANDON_AFTER_S:
        return False
    return ended_at_s is None or ended_at_s >= ABANDON_AFTER_S


def flow_outcome(state: State, first_audio_s: float | None) -> Outcome:
    entries: Sequence[Entry] = state.entries
    if any(e.action == "opt_out" for e in entries):
        return Outcome.OPTED_OUT
    if any(e.action == "stream" and e.result == "agent_unavailable" for e in entries):
        return Outcome.AGENT_UNAVAILABLE
    transfers = [e for e in entries if e.action == "transfer"]
    if any(e.result == "transferred" for e in transfers):
        return Outcome.TRANSFERRED
    if transfers:
        return Outcome.TRANSFER_FAILED
    if any(e.action == "voicemail_drop" and e.result == "played" for e in entries):
        return Outcome.VOICEMAIL_LEFT
    decisions = [e for e in entries if e.action == "amd" and e.decision is not None]
    if decisions and decisions[-1].decision == "machine":
        return Outcome.MACHINE
    ended_at_s = state.at(state.ended_at) if state.ended_at is not None else None
    if decisions:  # the 2 s count from the human decision
        shift = decisions[-1].decided_at_s or 0.0
        first_audio_s = None if first_audio_s is None else max(0.0, first_audio_s - shift)
        ended_at_s = None if ended_at_s is None else ended_at_s - shift
    if is_abandoned(first_audio_s, ended_at_s):
        return Outcome.ABANDONED
    if state.ended_by == "flow" and any(e.action in ("play", "say") and e.result == "played" for e in entries):
        return Outcome.MESSAGE_PLAYED
    return Outcome.ANSWERED
