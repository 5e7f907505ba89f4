"""The demo's call flow and its per-number story: what each answered callee heard and did.

The flow is the issue's example, spoken (espeak-ng renders the say texts, so
the demo ships no audio): greet the customer by name, offer a menu; 1 is a
blind transfer to the advisors' queue that falls back to bridging the agent
when the PBX refuses REFER, 9 is an opt-out, nothing is asked once more and
then the call ends; 2 hands the call to an AI agent (a ``stream`` step to the
reference agent the demo runs on loopback), which greets, listens and reports
a disposition. The sandbox PBX's callees that act (press 1, 2 or 9, accept or
refuse REFER) are enqueued beside the sample list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

DEMO_FLOW = """\
start = "offer"
max_duration_s = 15  # a bridged agent call in the demo talks until then

[steps.offer]
say = "Hello {{name}}. This is the sandbox dialer with an offer for you."
next = "menu"

[steps.menu]
gather = {{ num_digits = 1, timeout_s = 3 }}
say = "Press 1 to speak with an advisor, 2 for our assistant, 9 to stop receiving calls."
branches = {{ "1" = "agent", "2" = "assistant", "9" = "optout", none = "bye" }}

[steps.assistant]
stream = {{ url = "ws://127.0.0.1:{agent_port}/agent" }}
on_failure = "sorry"

[steps.agent]
transfer = "sip:advisors@127.0.0.1:{port}"
on_failure = "agent_bridge"

[steps.agent_bridge]
transfer = "sip:advisors@127.0.0.1:{port}"
mode = "bridge"
on_failure = "sorry"

[steps.sorry]
say = "Sorry, no advisor is free right now. Goodbye."
next = "bye"

[steps.optout]
opt_out = true
next = "bye"

[steps.bye]
hangup = true
"""

# Sandbox callees that act (sandbox/plan.toml), enqueued with a name for the greeting.
ACTING_CALLEES: Mapping[str, str] = {
    "+8613900007002": "Rupert",  # presses 1, accepts the REFER: transferred
    "+8613900007003": "Sybil",  # presses 1, refuses REFER (403): bridged to the agent instead
    "+8613900007004": "Olivia",  # presses 2: the AI agent talks with her and reports "interested"
    "+8613900007009": "Trent",  # presses 9: opted out, on the DNC list at once
}


def write_demo_flow(folder: Path, pbx_port: int, agent_port: int = 8765) -> Path:
    """The demo flow, pointing its transfers at the sandbox PBX on ``pbx_port``, its stream at ``agent_port``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "demo-flow.toml"
    path.write_text(DEMO_FLOW.format(port=pbx_port, agent_port=agent_port), encoding="utf-8")
    return path


def flow_story(steps: Iterable[Mapping[str, Any]] | None) -> str:
    """What the flow log says happened: "heard 3.1 s of prompt, pressed 1, transferred to advisors"."""
    parts: list[str] = []
    before = 0.0  # when the previous step ended: a stream step's talk runs from there to its own end
    heard = sum(float(s.get("played_s") or 0.0) for s in steps or [])
    if steps:
        parts.append(f"heard {heard:.1f} s of prompt" if heard > 0 else "heard nothing")
    for step in steps or []:
        action, result = step.get("action"), step.get("result")
        if action == "gather" and step.get("digits"):
            parts.append(f"pressed {step['digits']}")
        elif action == "transfer" and result in ("transferred", "failed"):
            who = str(step.get("target") or "").split(":", 1)[-1].split("@", 1)[0] or "the agent"
            parts.append(f"transferred to {who}" if result == "transferred"
                         else f"transfer to {who} failed ({step.get('status')})")
        elif action == "stream":
            talked = float(step.get("at_s") or 0.0) - before
            parts.append(f"talked with the AI agent {talked:.1f} s, disposition {step.get('disposition') or 'none'}"
                         if result != "agent_unavailable" else "the AI agent was unavailable")
        elif action == "opt_out":
            parts.append("opted out")
        elif result == "remote_hangup":
            parts.append("hung up")
        elif result == "max_duration":
            parts.append("ended at the flow's time limit")
        before = float(step.get("at_s") or before)
    return ", ".join(parts)
