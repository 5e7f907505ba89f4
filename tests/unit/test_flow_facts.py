"""What a flow's report adds to the CDR: the business outcome, and what happens when the script failed."""

from __future__ import annotations

from shared.outcomes import Outcome
from worker.flow_job import flow_facts


def test_no_report_keeps_the_sip_outcome() -> None:
    """A call without a flow (or one never answered) keeps what the SIP classification said."""
    assert flow_facts(None, Outcome.ANSWERED).outcome is Outcome.ANSWERED


def test_the_report_gives_the_business_outcome_and_cdr_columns() -> None:
    """transferred, the digits, the transfer's target and status, the recording and first-audio time."""
    facts = flow_facts({"steps": [{"step": "agent", "action": "transfer", "result": "transferred"}],
                        "outcome": "transferred", "digits": "1", "transfer_target": "sip:a@pbx",
                        "transfer_status": 200, "recording": "/r.wav", "first_audio_s": 0.05}, Outcome.ANSWERED)
    assert (facts.outcome, facts.digits, facts.transfer_target, facts.transfer_status, facts.recording,
            facts.first_audio_s) == (Outcome.TRANSFERRED, "1", "sip:a@pbx", 200, "/r.wav", 0.05)


def test_a_failed_script_is_answered_and_says_why_in_the_log() -> None:
    """The runtime hung up a script that raised: the call counts as answered and the log ends with the error."""
    facts = flow_facts({"error": "on_answer: MediaError: no audio stream"}, Outcome.ANSWERED)
    assert facts.outcome is Outcome.ANSWERED
    assert facts.steps == [{"step": None, "action": "error", "result": "on_answer: MediaError: no audio stream",
                            "at_s": None}]
