"""One row in, one verdict out: an accepted job (E.164 + metadata) or a reject with its reason.

Pure: no I/O, so it is fuzzed with hypothesis and reused by the DNC import.
The number goes through :func:`shared.numbers.normalise` with the campaign's
policy (its region for numbers written without a country code, its allowed
regions and number types: the toll-fraud guard refuses premium-rate,
shared-cost and out-of-region numbers here, before they can be dialled).
Every other cell is kept as the job's metadata, keyed by its header.

Two spreadsheet accidents get special care because they are common and their
cause is not obvious: a numeric cell exported as ``13900001111.0`` is read as
the integer it was, and one exported as ``1.39E+10`` is refused with a hint,
because its last digits are gone.
"""

from __future__ import annotations

import json.encoder
import re
from collections.abc import Sequence
from dataclasses import dataclass

import phonenumbers

from shared.errors import ConfigError, InvalidNumber
from shared.numbers import DEFAULT_ALLOWED_TYPES, NormalisedNumber, NumberType, normalise, parse_number_types

MAX_SHOWN_VALUE = 200  # longest raw value kept in a reject; a 100 kB cell helps nobody

_FLOAT_EXPORT = re.compile(r"(\+?\d{5,})\.0+")
_SCIENTIFIC = re.compile(r"[+-]?\d+(?:[.,]\d+)?[eE]\+?\d+")
_encode_string = json.encoder.encode_basestring  # the C encoder json.dumps uses
ALL_REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)
ALL_TYPES = frozenset(NumberType)


@dataclass(frozen=True, slots=True)
class NumberPolicy:
    """Which numbers a campaign (or the DNC list) takes, in the terms of shared.numbers."""

    region: str = "CN"
    allowed_regions: frozenset[str] | None = None  # None: the region itself
    allowed_types: frozenset[NumberType] = DEFAULT_ALLOWED_TYPES

    @classmethod
    def for_campaign(cls, region: str, allowed_regions: Sequence[str], allowed_types: Sequence[str]) -> NumberPolicy:
        """The policy stored on a campaign row; an unusable one is a ConfigError naming the field."""
        if region not in ALL_REGIONS:
            raise ConfigError(f"campaign region {region!r} is not an ISO 3166 region code such as 'CN'")
        unknown = sorted(set(allowed_regions) - ALL_REGIONS)
        if unknown:
            raise ConfigError(f"campaign allowed_regions: unknown region(s) {', '.join(unknown)}")
        try:
            types = parse_number_types(",".join(allowed_types)) if allowed_types else DEFAULT_ALLOWED_TYPES
        except ValueError as exc:
            raise ConfigError(f"campaign allowed_types: {exc}") from None
        return cls(region, frozenset(allowed_regions) or None, types)

    @classmethod
    def any_number(cls, region: str) -> NumberPolicy:
        """Every valid number of every region and type: what the DNC list takes."""
        if region not in ALL_REGIONS:
            raise ConfigError(f"DIALER_DEFAULT_REGION: {region!r} is not an ISO 3166 region code")
        return cls(region, ALL_REGIONS, ALL_TYPES)

    def normalise(self, raw: str) -> NormalisedNumber:
        """Normalise one written number; InvalidNumber says why it is refused."""
        if _SCIENTIFIC.fullmatch(raw.strip()):
            raise InvalidNumber(
                raw, "written in scientific notation, which has lost the last digits: "
                     "format the column as text in the spreadsheet and export again"
            )
        text = raw.strip()
        if (match := _FLOAT_EXPORT.fullmatch(text)) is not None:
            text = match.group(1)
        return normalise(text, self.region, allowed_regions=self.allowed_regions, allowed_types=self.allowed_types)


@dataclass(frozen=True, slots=True)
class Accepted:
    row: int
    e164: str
    metadata: str  # a JSON object of the other cells


@dataclass(frozen=True, slots=True)
class Reject:
    """A refused row as the error report and ``upload_rejects`` show it."""

    row: int
    field: str
    raw: str
    reason: str

    @classmethod
    def make(cls, row: int, field: str, raw: str, reason: str) -> Reject:
        shown = raw if len(raw) <= MAX_SHOWN_VALUE else raw[:MAX_SHOWN_VALUE] + "…"
        return cls(row, field, shown.replace("\x00", ""), reason)


@dataclass(frozen=True, slots=True)
class Columns:
    """The header, read once: where the phone is and what each other column is called."""

    phone: int
    phone_name: str
    keys: tuple[str, ...]  # JSON-encoded metadata key and colon, by column index

    @classmethod
    def from_header(cls, header: Sequence[str], phone: int) -> Columns:
        """Metadata keys: the header text; blanks and repeats get a column number so none is lost."""
        keys: list[str] = []
        seen: set[str] = set()
        for index, name in enumerate(header):
            key = name.strip().replace("\ufeff", "").replace("\x00", "") or f"column_{index + 1}"
            if key in seen:
                key = f"{key}_{index + 1}"
            seen.add(key)
            keys.append(_encode_string(key) + ":")
        return cls(phone, header[phone].strip() or f"column_{phone + 1}", tuple(keys))

    def key(self, index: int) -> str:
        return self.keys[index] if index < len(self.keys) else _encode_string(f"column_{index + 1}") + ":"


def check_row(number: int, cells: Sequence[str], columns: Columns, policy: NumberPolicy) -> Accepted | Reject:
    """Validate one data row; never raises for bad data."""
    raw = cells[columns.phone] if columns.phone < len(cells) else ""
    if not raw.strip():
        return Reject.make(number, columns.phone_name, raw, "the phone number is empty")
    try:
        found = policy.normalise(raw)
    except InvalidNumber as exc:
        return Reject.make(number, columns.phone_name, raw, exc.reason)
    return Accepted(number, found.e164, metadata_json(cells, columns))


def metadata_json(cells: Sequence[str], columns: Columns) -> str:
    """The non-empty cells other than the phone, as a JSON object (about twice as fast as json.dumps)."""
    parts = []
    for index, cell in enumerate(cells):
        if index == columns.phone:
            continue
        value = cell.strip()
        if not value:
            continue
        if "\x00" in value:  # Postgres text and jsonb cannot hold NUL
            value = value.replace("\x00", "")
        parts.append(columns.key(index) + _encode_string(value))
    return "{" + ",".join(parts) + "}"
