"""``dialer call --flow FILE``: the flow file made ready to run, and its log printed under the ladder.

The flow comes from the file, not from Postgres: its WAVs are read beside it,
its say texts rendered into the local prompt cache, and ``--var name=value``
fills the placeholders a campaign's upload columns would. A placeholder with
no ``--var`` is the same one error as an upload without that column.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.errors import ConfigError
from shared.flow.load import load_flow_file
from shared.flow.model import Flow
from shared.flow.validate import check_columns
from worker.flow_runner import FlowScript, script_factory
from worker.prompts import MemorySource, PromptCache, resolve_prompts


@dataclass(frozen=True)
class DiagnosticFlow:
    flow: Flow
    factory: Callable[[], FlowScript]


def parse_vars(pairs: Sequence[str]) -> dict[str, str]:
    """``name=value`` pairs; ConfigError names a pair without ``=``."""
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--var {pair!r}: write it as name=value")
        values[name.strip()] = value
    return values


def prepare(path: Path, values: Mapping[str, str], data_dir: Path) -> DiagnosticFlow:
    """Load and check the flow, and put every prompt it plays on local disk (FlowError / PromptUnavailable)."""
    loaded = load_flow_file(path)
    check_columns(loaded.flow, values, where=f"{path} (--var)")
    prompts = resolve_prompts(loaded.flow, values, PromptCache(data_dir), MemorySource(loaded.wavs))
    return DiagnosticFlow(loaded.flow, script_factory(loaded.flow, prompts, recordings_dir=data_dir / "recordings",
                                                      stream_params=dict(values)))


def step_line(entry: Mapping[str, Any]) -> str:
    """``  +3.10 s  offer  play -> played (heard 3.1 s)``."""
    details = []
    if entry.get("played_s") is not None:
        details.append(f"heard {entry['played_s']:.1f} s")
    if "digits" in entry:
        details.append(f"digits {entry['digits']!r}")
    if entry.get("target"):
        details.append(f"to {entry['target']}")
    if entry.get("status") is not None:
        details.append(f"status {entry['status']}")
    if entry.get("path"):
        details.append(str(entry["path"]))
    if entry.get("reason") is not None:  # amd: "machine (long_greeting at 1.62 s)"
        details.append(f"{entry['reason']} at {entry.get('decided_at_s') or 0:.2f} s")
    if entry.get("heard"):
        details.append(f"after the {entry['heard']}")
    if entry.get("disposition"):  # a stream step: what the AI agent concluded
        details.append(f"disposition {entry['disposition']}")
    if entry.get("detail"):
        details.append(str(entry["detail"]))
    at = entry.get("at_s")
    when = f"+{at:.2f} s" if isinstance(at, int | float) else "      "
    tail = f" ({', '.join(details)})" if details else ""
    return f"  {when}  {entry.get('step')}  {entry.get('action')} -> {entry.get('result')}{tail}"


def flow_lines(report: Mapping[str, Any]) -> list[str]:
    """The flow log as lines, after a ``flow:`` header that says when the first audio went out."""
    first = report.get("first_audio_s")
    audio = f"first audio {first * 1000:.0f} ms after answer" if isinstance(first, int | float) else "no audio sent"
    lines = [f"flow: {audio}"]
    lines.extend(step_line(entry) for entry in report.get("steps") or [])
    if report.get("error"):
        lines.append(f"  flow error: {report['error']}")
    return lines
