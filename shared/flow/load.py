"""Reading a flow file and the WAVs it names (stdlib only: tomllib, json, yaml; no database).

``load_flow_file`` is what ``dialer campaign create --flow`` and ``dialer call
--flow`` call; ``load_flow_document`` is the same for a document that arrived
some other way (the HTTP API), with its WAVs given as bytes by name. Either
way the result is a validated :class:`LoadedFlow`: the flow with each play
step's ``wav_sha256`` set, and the WAV bytes by hash, ready to be stored with
the campaign. A missing, unreadable or unsuitable WAV is a FlowError naming
the step and the file.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from shared.flow.model import Flow, FlowError, parse_flow
from shared.flow.validate import validate_flow
from shared.flow.wav import WavProblem, check_wav


@dataclass(frozen=True, slots=True)
class LoadedFlow:
    flow: Flow
    wavs: Mapping[str, bytes]  # sha256 -> the WAV file's bytes


def parse_document(text: str, suffix: str, *, where: str) -> Mapping[str, Any]:
    """TOML, YAML or JSON by file suffix (``.toml``, ``.yaml``/``.yml``, ``.json``)."""
    suffix = suffix.lower()
    try:
        if suffix == ".toml":
            return tomllib.loads(text)
        if suffix in (".yaml", ".yml"):
            doc = yaml.safe_load(text)
        elif suffix == ".json":
            doc = json.loads(text)
        else:
            raise FlowError(f"{where}: unknown flow format {suffix!r}; use .toml, .yaml or .json")
    except (tomllib.TOMLDecodeError, yaml.YAMLError, json.JSONDecodeError) as exc:
        raise FlowError(f"{where}: not valid {suffix.lstrip('.').upper()}: {exc}") from None
    if not isinstance(doc, Mapping):
        raise FlowError(f"{where}: expected a table with `start` and `steps`")
    return doc


def load_flow_file(path: Path) -> LoadedFlow:
    """Parse, validate and attach the WAVs of a flow file; WAV paths are relative to the file."""
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FlowError(f"{where}: cannot read the flow file ({exc}); check the path") from None
    doc = parse_document(text, path.suffix, where=where)

    def read(name: str) -> bytes:
        wav = path.parent / name
        try:
            return wav.read_bytes()
        except OSError as exc:
            raise FileNotFoundError(f"cannot read {wav} ({exc.strerror or exc})") from None

    return load_flow_document(doc, read, where=where)


def load_flow_document(doc: Mapping[str, Any], read: Callable[[str], bytes], *, where: str = "flow") -> LoadedFlow:
    """Parse and validate ``doc``; ``read(name)`` returns a play step's WAV bytes or raises OSError."""
    flow = validate_flow(parse_flow(doc, where=where), where=where)
    wavs: dict[str, bytes] = {}
    steps = dict(flow.steps)
    for sid, step in flow.steps.items():
        if step.prompt_kind != "play":
            continue
        try:
            data = read(step.prompt)
        except OSError as exc:
            raise FlowError(f"{where}: step {sid!r}: WAV {step.prompt!r} is missing or unreadable: {exc}") from None
        try:
            info = check_wav(data)
        except WavProblem as exc:
            raise FlowError(f"{where}: step {sid!r}: WAV {step.prompt!r}: {exc}") from None
        wavs[info.sha256] = data
        steps[sid] = replace(step, wav_sha256=info.sha256)
    return LoadedFlow(flow=replace(flow, steps=steps), wavs=wavs)


def dict_reader(files: Mapping[str, bytes]) -> Callable[[str], bytes]:
    """A ``read`` for WAVs that came as named bytes (an API request's ``prompts``)."""

    def read(name: str) -> bytes:
        if name not in files:
            raise FileNotFoundError(f"no prompt named {name!r} was sent with the flow")
        return files[name]

    return read
