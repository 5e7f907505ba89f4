"""An AI agent's disposition reaches the CDR's flow steps and the disposition metric; unavailable agents do not."""

from __future__ import annotations

from prometheus_client import REGISTRY

from shared.outcomes import Outcome
from worker.flow_job import count_flow, disposition_label, flow_facts


def sample(campaign: str, disposition: str) -> float:
    value = REGISTRY.get_sample_value("dialer_agent_dispositions_total",
                                      {"campaign": campaign, "disposition": disposition})
    return value or 0.0


def test_disposition_goes_to_the_cdr_steps_and_the_metric() -> None:
    """The stream entry (with disposition and agent_result) is kept in the CDR's steps and counted by campaign."""
    report = {"outcome": "answered", "steps": [
        {"step": "agent", "action": "stream", "result": "hangup", "at_s": 9.1, "disposition": "interested",
         "agent_result": {"disposition": "interested", "notes": "call back"}}]}
    facts = flow_facts(report, Outcome.ANSWERED)
    assert facts.steps is not None and facts.steps[0]["agent_result"]["notes"] == "call back"
    before = sample("agent-cdr-test", "interested")
    count_flow("agent-cdr-test", facts)
    assert sample("agent-cdr-test", "interested") == before + 1


def test_unavailable_agent_counts_no_disposition() -> None:
    """An agent never reached has no disposition: the flow outcome (agent_unavailable) says it instead."""
    report = {"outcome": "agent_unavailable", "steps": [
        {"step": "agent", "action": "stream", "result": "agent_unavailable", "at_s": 0.2}]}
    facts = flow_facts(report, Outcome.ANSWERED)
    assert facts.outcome == Outcome.AGENT_UNAVAILABLE
    count_flow("agent-cdr-test-2", facts)
    assert sample("agent-cdr-test-2", "none") == 0.0


def test_disposition_label_is_bounded() -> None:
    """No result, or anything not a short word, is labelled none."""
    assert disposition_label(None) == "none" and disposition_label("x" * 40) == "none"
    assert disposition_label("not_interested") == "not_interested"
