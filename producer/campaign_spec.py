"""The one campaign spec: every option a campaign has, defined once for the CLI, the HTTP API and the store.

Two layers, on purpose:
- this pydantic model coerces the wire forms into typed values (an ISO time
  string in the campaign's zone, ``busy=10m,no_answer=30m`` or
  ``{"busy": 600}``, a list or a comma list of types). A value that cannot
  even be read is a ValueError naming the field;
- :func:`producer.campaigns.check_spec` applies the rules (ranges, windows,
  regions, the flow) when the campaign is created, so nothing is stored until
  every option and the whole flow are good.

``flow`` is a :class:`FlowSpec`: the flow document as parsed from its file or
request body, plus the WAV bytes its ``play`` steps name. It is loaded and
validated (:mod:`shared.flow.load`) only in ``check_spec``, whichever door it
came through, so the CLI and the API give the same one error for a bad flow.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from shared.flow.load import LoadedFlow, dict_reader, load_flow_document, parse_document
from shared.flow.model import FlowError
from shared.outcomes import Outcome
from shared.retry_policy import parse_retry_delays


class FlowSpec(BaseModel):
    """A flow as given: its document and the prompt WAVs it names (file name as written -> bytes)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    document: dict[str, Any]
    prompts: dict[str, bytes] = Field(default_factory=dict, repr=False)
    source: str = "flow"  # names the file (or "flow") in error messages

    @classmethod
    def from_file(cls, path: Path) -> FlowSpec:
        """Read a TOML/YAML/JSON flow file and the WAVs its play steps name (relative to the file).

        A WAV that cannot be read is left out here; loading then reports it
        against its step, like every other problem.
        """
        where = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise FlowError(f"{where}: cannot read the flow file ({exc}); check the path") from None
        doc = dict(parse_document(text, path.suffix, where=where))
        prompts: dict[str, bytes] = {}
        steps = doc.get("steps")
        for body in steps.values() if isinstance(steps, Mapping) else ():
            name = body.get("play") if isinstance(body, Mapping) else None
            if isinstance(name, str) and name not in prompts:
                try:
                    prompts[name] = (path.parent / name).read_bytes()
                except OSError:
                    pass
        return cls(document=doc, prompts=prompts, source=where)

    def load(self) -> LoadedFlow:
        """The validated flow with its WAVs by hash, or FlowError naming the step and the problem."""
        return load_flow_document(self.document, dict_reader(self.prompts), where=self.source)


class CampaignSpec(BaseModel):
    """What an operator asks for; :func:`producer.campaigns.create_campaign` checks it and stores it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    trunk: str
    region: str = "CN"
    tz: str = "Asia/Shanghai"
    windows: str = ""
    days: str = "mon-sun"
    start_at: datetime | None = Field(default=None, description="ISO 8601; no offset = tz")
    end_at: datetime | None = None
    recur_cron: str | None = None
    max_attempts: int = 3
    retry_delays: dict[Outcome, timedelta] = Field(
        default_factory=dict, description="busy=10m,... or {outcome: seconds}")
    max_concurrent: int = 10
    cps: float = 5.0
    ring_timeout_s: float = 45.0
    hold_s: float = Field(default=0.0, description="without a flow: seconds on an answered call before BYE")
    allowed_regions: tuple[str, ...] = ()
    allowed_types: tuple[str, ...] = ("mobile", "fixed_line", "fixed_line_or_mobile")
    flow: FlowSpec | None = None

    def __init__(self, name: str | None = None, trunk: str | None = None, /, **data: Any) -> None:
        """``CampaignSpec("spring", "t")`` as well as keywords."""
        if name is not None:
            data["name"] = name
        if trunk is not None:
            data["trunk"] = trunk
        super().__init__(**data)

    @field_validator("start_at", "end_at", mode="before")
    @classmethod
    def _when(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            from producer.campaigns import parse_when  # campaigns imports this module

            return parse_when(value, info.data.get("tz", "Asia/Shanghai")) if value.strip() else None
        return value

    @field_validator("retry_delays", mode="before")
    @classmethod
    def _delays(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_retry_delays(value)
        if isinstance(value, Mapping):
            return {k: timedelta(seconds=v) if isinstance(v, int | float) else v for k, v in value.items()}
        return value

    @field_validator("allowed_regions", "allowed_types", mode="before")
    @classmethod
    def _names(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return cls.model_fields[info.field_name or ""].default
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value
