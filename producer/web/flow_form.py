"""The create-campaign form's call flow: a TOML/YAML/JSON file plus the prompt WAVs it plays.

The CLI reads a flow file and the WAVs beside it (``FlowSpec.from_file``);
the API takes the document and base64 WAVs. A browser sends the file and
the WAVs as uploads, named only by their base names, so a ``play`` step's
WAV is matched by the name it was written with, or else by its base name
(``prompts/offer.wav`` takes an uploaded ``offer.wav``). From there the one
checker decides: :meth:`FlowSpec.load`, which ``check_spec`` runs for the CLI
and the API and ``create_campaign`` runs again before storing; its one error
(naming the file and the step) goes beside the flow field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from producer.campaign_spec import FlowSpec
from shared.errors import ConfigError
from shared.flow.load import parse_document

FIELD = "flow"
PROMPTS_FIELD = "prompts"
ACCEPT = ".toml,.yaml,.yml,.json"
MAX_FLOW_BYTES = 1 << 20  # a flow document is a few kilobytes; a bigger file is the wrong file


@dataclass(frozen=True)
class FlowUpload:
    """The flow the form sent: None when none was, or the error to show beside the flow field."""

    flow: FlowSpec | None = None
    error: str | None = None


def read_flow(filename: str, data: bytes, prompts: Sequence[tuple[str, bytes]]) -> FlowUpload:
    """Parse the uploaded flow file and attach the uploaded WAVs its ``play`` steps name."""
    where = PurePath(filename).name or "flow"
    if len(data) > MAX_FLOW_BYTES:
        return FlowUpload(error=f"{where}: {len(data)} bytes is too big for a flow file; choose the flow's"
                                f" .toml, .yaml or .json file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return FlowUpload(error=f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8")
    try:
        document = dict(parse_document(text, PurePath(where).suffix, where=where))
    except ConfigError as exc:
        return FlowUpload(error=str(exc))
    return FlowUpload(FlowSpec(document=document, prompts=_match(document, prompts), source=where))


def _match(document: Mapping[str, Any], uploads: Sequence[tuple[str, bytes]]) -> dict[str, bytes]:
    """Each play step's WAV name -> the uploaded bytes of that name (or base name); missing ones left out."""
    by_name = {PurePath(name).name: data for name, data in uploads}
    prompts: dict[str, bytes] = {}
    steps = document.get("steps")
    for body in steps.values() if isinstance(steps, Mapping) else ():
        name = body.get("play") if isinstance(body, Mapping) else None
        if isinstance(name, str) and name not in prompts:
            found = by_name.get(name, by_name.get(PurePath(name).name))
            if found is not None:
                prompts[name] = found
    return prompts


def check(upload: FlowUpload) -> str | None:
    """The flow's one error, or None: the loader the CLI and the API use (``FlowSpec.load``), run now so the
    error shows beside the flow field together with the other fields' errors."""
    if upload.error is not None or upload.flow is None:
        return upload.error
    try:
        upload.flow.load()
    except ConfigError as exc:
        return str(exc)
    return None
