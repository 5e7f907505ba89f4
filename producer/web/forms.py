"""The create-campaign form: the CLI's options, parsed by the CLI's parsers, checked by ``check_spec``.

The page must refuse what the CLI refuses, with each error beside its field.
Rather than a second copy of any rule, each field is checked by the one
checker, :func:`producer.campaigns.check_spec`, on a spec that is known good
except for that field; so the page can show every bad field at once, and it
names the field by construction, not by reading the message. Fields that
only mean something together (start and end) are checked together last.

A new campaign option (the call flow file, say) is one more :class:`FormField`
in :data:`FIELDS`; the template renders whatever the list holds, and
``kind="file"`` fields arrive as uploaded bytes in ``files``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from producer.campaigns import CampaignSpec, check_spec, parse_when
from shared.errors import ConfigError
from shared.retry_policy import parse_duration, parse_retry_delays

_PROBE = CampaignSpec(name="probe", trunk="probe")


def _int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None


def _float(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None


def _seconds(text: str) -> float:
    return parse_duration(text.strip()).total_seconds()


def _words(text: str) -> tuple[str, ...]:
    return tuple(word.strip() for word in text.split(",") if word.strip())


@dataclass(frozen=True)
class FormField:
    """One input: its form name (the CLI option without ``--``), the spec attribute it fills, how to parse it."""

    name: str
    attr: str
    default: str
    parse: Callable[[str], Any] = str
    kind: str = "text"  # text | number | file
    needs_tz: bool = False  # parsed in the campaign's time zone (start/end)
    optional: bool = False  # empty text means "not set" (None)


FIELDS: tuple[FormField, ...] = (
    FormField("name", "name", ""),
    FormField("trunk", "trunk", "default"),
    FormField("region", "region", "CN"),
    FormField("tz", "tz", "Asia/Shanghai"),
    FormField("window", "windows", ""),
    FormField("days", "days", "mon-sun"),
    FormField("start-at", "start_at", "", needs_tz=True, optional=True),
    FormField("end-at", "end_at", "", needs_tz=True, optional=True),
    FormField("recur", "recur_cron", "", optional=True),
    FormField("max-attempts", "max_attempts", "3", _int, "number"),
    FormField("retry-delay", "retry_delays", "", parse_retry_delays),
    FormField("max-concurrent", "max_concurrent", "10", _int, "number"),
    FormField("cps", "cps", "5", _float, "number"),
    FormField("ring-timeout", "ring_timeout_s", "45s", _seconds),
    FormField("hold", "hold_s", "0s", _seconds),
    FormField("allow-regions", "allowed_regions", "", _words),
    FormField("allow-types", "allowed_types", "mobile,fixed_line", _words),
)
TOGETHER = (("start-at", "end-at"),)  # checked as a pair once each is good alone; an error goes on the last


@dataclass(frozen=True)
class FormResult:
    spec: CampaignSpec | None
    errors: dict[str, str]
    values: dict[str, str]


def defaults() -> dict[str, str]:
    return {f.name: f.default for f in FIELDS}


def _message(exc: Exception, spec_name: str) -> str:
    text = str(exc)
    prefix = f"campaign {spec_name!r}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def read_form(form: Mapping[str, str], files: Mapping[str, bytes] | None = None) -> FormResult:
    """Parse and check every field; a spec only when all are good (``files`` is the hook for file fields)."""
    values = {f.name: str(form.get(f.name, f.default)).strip() for f in FIELDS if f.kind != "file"}  # absent: default
    tz = _usable_tz(values.get("tz") or _PROBE.tz)
    parsed, errors = _parse_all(values, tz)
    for f in FIELDS:
        if f.name not in errors and f.kind != "file":
            extra: dict[str, Any] = {f.attr: parsed[f.attr]}
            if f.name in ("window", "days"):
                extra["tz"] = tz
            _probe(extra, f.name, errors)
    for group in TOGETHER:
        if not any(name in errors for name in group):
            _probe({"tz": tz, **{f.attr: parsed[f.attr] for f in FIELDS if f.name in group}}, group[-1], errors)
    if errors:
        return FormResult(None, errors, values)
    return FormResult(CampaignSpec(**parsed), {}, values)


def _usable_tz(tz: str) -> str:
    """The form's time zone when it is a real one; else the default, to parse times while tz's error shows."""
    try:
        check_spec(_PROBE.model_copy(update={"tz": tz}))
    except ConfigError:
        return _PROBE.tz
    return tz


def _parse_all(values: Mapping[str, str], tz: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Each field's text through the CLI's parser for that option."""
    parsed: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for f in FIELDS:
        if f.kind == "file":
            continue
        text = values[f.name]
        if f.optional and not text:
            parsed[f.attr] = None
            continue
        try:
            parsed[f.attr] = parse_when(text, tz) if f.needs_tz else f.parse(text)
        except (ValueError, KeyError) as exc:
            errors[f.name] = str(exc.args[0]) if isinstance(exc, KeyError) else str(exc)
    return parsed, errors


def _probe(attrs: Mapping[str, Any], field_name: str, errors: dict[str, str]) -> None:
    """check_spec on a known-good spec with only ``attrs`` from the form; its error goes on ``field_name``."""
    probe: CampaignSpec = _PROBE.model_copy(update=dict(attrs))  # the spec is a pydantic model
    try:
        check_spec(probe)
    except ConfigError as exc:
        errors[field_name] = _message(exc, probe.name)
