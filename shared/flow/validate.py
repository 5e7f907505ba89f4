"""Rules a parsed flow must keep before a campaign may use it (pure).

- every ``next``/branch/``on_failure`` names a step;
- a transfer target is a SIP URI (``sip:`` or ``sips:``, a user or host, no spaces);
- no loop without a way out: from every step the start can reach, some path
  ends the call (a ``hangup``, a step with nowhere to go next, a transfer that
  succeeds, a gather that ends when nothing is pressed);
- ``{column}`` placeholders of ``say`` texts name columns the job will have,
  checked where the columns are known (an upload's header, ``--var``).

Each check raises one :class:`~shared.flow.model.FlowError` naming the step.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping

from shared.flow import listen
from shared.flow.model import Flow, FlowError, Step

_SIP_URI = re.compile(r"^sips?:([^@\s<>\"]+@)?[A-Za-z0-9.\-\[\]:]+(;[^\s<>\"]*)?$")


def validate_flow(flow: Flow, *, where: str = "flow") -> Flow:
    """The flow unchanged, or FlowError naming the first step that breaks a rule."""
    for step in flow.steps.values():
        for target in step.exits():
            if target not in flow.steps:
                raise FlowError(f"{where}: step {step.id!r}: {target!r} names no step; "
                                f"steps are {', '.join(flow.steps)}")
        if step.kind == "transfer" and not _SIP_URI.match(step.target):
            raise FlowError(f"{where}: step {step.id!r}: transfer target {step.target!r} is not a SIP URI; "
                            "write it as sip:user@host[:port]")
        placeholders(step, where=where)
    trapped = _trapped_steps(flow)
    if trapped:
        cycle = " -> ".join(trapped)
        raise FlowError(f"{where}: step {trapped[0]!r}: loop with no way out ({cycle}); "
                        "give one of these steps a branch to a hangup or to a step with no next")
    return flow


def _ends_call(step: Step) -> bool:
    """Whether some outcome of this step ends the call (rather than moving to another step)."""
    if step.kind in ("hangup", "transfer", "stream"):
        return True  # a transfer that succeeds ends our part of the call; an agent may hang up
    if step.kind == "gather":
        return "none" not in step.branches and step.next is None
    if step.kind == "amd":
        return listen.ends_call(step.branches, step.next)
    return step.next is None


def _reachable(flow: Flow) -> list[str]:
    seen: list[str] = []
    todo = [flow.start]
    while todo:
        sid = todo.pop()
        if sid in seen:
            continue
        seen.append(sid)
        todo.extend(t for t in flow.steps[sid].exits() if t not in seen)
    return seen


def _trapped_steps(flow: Flow) -> list[str]:
    """Steps reachable from start from which no path ends the call (empty when the flow is sound)."""
    reachable = _reachable(flow)
    can_end = {sid for sid in reachable if _ends_call(flow.steps[sid])}
    changed = True
    while changed:
        changed = False
        for sid in reachable:
            if sid not in can_end and any(t in can_end for t in flow.steps[sid].exits()):
                can_end.add(sid)
                changed = True
    return [sid for sid in reachable if sid not in can_end]


def placeholders(step: Step, *, where: str = "flow") -> tuple[str, ...]:
    """The ``{column}`` names a say text uses; FlowError for a malformed template."""
    if step.prompt_kind != "say":
        return ()
    try:
        names = [name for _, name, spec, conv in string.Formatter().parse(step.prompt) if name is not None
                 and not (spec or conv)]
        bad = [name for _, name, spec, conv in string.Formatter().parse(step.prompt) if name is not None
               and (spec or conv)]
    except ValueError as exc:
        raise FlowError(f"{where}: step {step.id!r}: say text has a broken placeholder ({exc}); "
                        "write {column} or double the braces {{ }}") from None
    if bad or any(not n.strip() or not n.isprintable() or "." in n or "[" in n for n in names):
        raise FlowError(f"{where}: step {step.id!r}: say text has a placeholder that is not a plain "
                        "{column} name")
    return tuple(dict.fromkeys(names))


def flow_placeholders(flow: Flow) -> dict[str, tuple[str, ...]]:
    """Step id -> the columns its say text needs (steps without any left out)."""
    return {sid: names for sid, step in flow.steps.items() if (names := placeholders(step))}


def check_columns(flow: Flow, columns: Iterable[str], *, where: str = "flow") -> None:
    """FlowError naming the first step whose say text needs a column that is not in ``columns``."""
    known = set(columns)
    for sid, names in flow_placeholders(flow).items():
        missing = [n for n in names if n not in known]
        if missing:
            have = ", ".join(sorted(known)) or "none"
            raise FlowError(f"{where}: step {sid!r}: placeholder {{{missing[0]}}} names no column "
                            f"(columns: {have}); add the column or change the text")


def render_text(step: Step, values: Mapping[str, object]) -> str:
    """The say text with its placeholders filled (every name must be in ``values``)."""
    names = placeholders(step)
    return step.prompt.format_map({n: str(values[n]) for n in names})
