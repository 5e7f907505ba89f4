"""The demo's per-number line, built from a call's flow log."""

from __future__ import annotations

from producer.demo_flow import flow_story


def test_the_story_of_a_refused_refer_then_a_bridge() -> None:
    """Heard time adds up over prompts; a 403 to REFER, the bridge, and the flow's time limit read in order."""
    steps = [
        {"step": "offer", "action": "say", "result": "played", "at_s": 3.5, "played_s": 3.1},
        {"step": "menu", "action": "gather", "result": "matched", "at_s": 3.6, "digits": "1", "played_s": 0.0},
        {"step": "agent", "action": "transfer", "result": "failed", "at_s": 3.7, "status": 403,
         "target": "sip:advisors@127.0.0.1:5060"},
        {"step": "agent_bridge", "action": "transfer", "result": "transferred", "at_s": 4.5, "status": 200,
         "target": "sip:advisors@127.0.0.1:5060"},
        {"step": "agent_bridge", "action": "transfer", "result": "max_duration", "at_s": 15.0},
    ]
    assert flow_story(steps) == ("heard 3.1 s of prompt, pressed 1, transfer to advisors failed (403), "
                                 "transferred to advisors, ended at the flow's time limit")


def test_nothing_sent_reads_as_heard_nothing() -> None:
    """A flow that sent no prompt says so: the silent call the dialer must never make."""
    assert flow_story([{"step": "hold", "action": "pause", "result": "paused", "at_s": 3.0}]) == "heard nothing"
    assert flow_story(None) == ""


def test_the_story_of_a_call_the_ai_agent_handled() -> None:
    """A stream step reads as the time from the step before it to the agent's end, with the agent's disposition."""
    steps = [
        {"step": "offer", "action": "say", "result": "played", "at_s": 3.5, "played_s": 3.1},
        {"step": "menu", "action": "gather", "result": "matched", "at_s": 3.6, "digits": "2", "played_s": 0.4},
        {"step": "assistant", "action": "stream", "result": "hangup", "at_s": 9.8, "disposition": "interested"},
    ]
    assert flow_story(steps) == ("heard 3.5 s of prompt, pressed 2, "
                                 "talked with the AI agent 6.2 s, disposition interested")
    unreachable = {"step": "assistant", "action": "stream", "result": "agent_unavailable", "at_s": 8.6}
    assert flow_story([*steps[:2], unreachable]).endswith("pressed 2, the AI agent was unavailable")
