"""An amd verdict reaches the decision counter and the time-to-decision histogram, by campaign and decision."""

from __future__ import annotations

from prometheus_client import REGISTRY

from shared.outcomes import Outcome
from worker.flow_job import count_flow, flow_facts


def decisions(campaign: str, decision: str, reason: str) -> float:
    labels = {"campaign": campaign, "decision": decision, "reason": reason}
    return REGISTRY.get_sample_value("dialer_amd_decisions_total", labels) or 0.0


def decision_seconds(campaign: str, decision: str, suffix: str) -> float:
    labels = {"campaign": campaign, "decision": decision}
    return REGISTRY.get_sample_value(f"dialer_amd_decision_seconds_{suffix}", labels) or 0.0


def amd_report(decision: str, reason: str, at_s: float) -> dict[str, object]:
    return {"outcome": "voicemail_left" if decision == "machine" else "message_played",
            "amd": {"decision": decision, "reason": reason, "decided_at_s": at_s, "detail": "test"},
            "steps": [{"step": "detect", "action": "amd", "result": decision, "at_s": at_s}]}


def test_each_verdict_is_counted_with_its_reason_and_time() -> None:
    """Human and machine verdicts count once each, and the histogram holds when they were settled."""
    campaign = "amd-metrics-test"
    for decision, reason, at_s in (("human", "human", 1.9), ("machine", "beep", 4.2)):
        before = decisions(campaign, decision, reason)
        count_flow(campaign, flow_facts(amd_report(decision, reason, at_s), Outcome.ANSWERED))
        assert decisions(campaign, decision, reason) == before + 1
        assert decision_seconds(campaign, decision, "count") == 1
        assert decision_seconds(campaign, decision, "sum") == at_s


def test_a_flow_without_a_verdict_counts_no_decision() -> None:
    """A call that ended before the amd step decided anything adds nothing to the decision metrics."""
    campaign = "amd-metrics-test-2"
    report = {"outcome": "answered", "amd": {"reason": "ended"}, "steps": []}
    count_flow(campaign, flow_facts(report, Outcome.ANSWERED))
    for decision in ("human", "machine", "notsure"):
        assert decision_seconds(campaign, decision, "count") == 0
