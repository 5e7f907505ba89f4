"""Fast path for phone-number parsing, compiled from phonenumbers' own metadata.

Why this exists: an upload normalises up to a million rows, and
``phonenumbers.parse`` + ``is_valid_number`` + ``number_type`` costs about
50 microseconds a number. Almost every row is plain digits, with or without a
``+`` or an international prefix, so for those we replay phonenumbers' own
algorithm with the region's patterns compiled once and cached.

Nothing here is a hand-written number plan: every pattern, length and prefix
comes from ``phonenumbers.PhoneMetadata``, and every step mirrors a function of
``phonenumbers.phonenumberutil`` (named in each docstring). The contract is
narrow: :func:`fast_parse` either returns exactly what phonenumbers would
conclude for a *valid* number, or returns ``None`` and the caller falls back
to phonenumbers itself. Invalid and unusual input (leading-zero national
numbers, non-geographic codes, too-short strings) always falls back, so the
rejection reasons come from one place. A hypothesis test pins fast == slow.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import NamedTuple

from phonenumbers import (
    COUNTRY_CODE_TO_REGION_CODE,
    PhoneMetadata,
    PhoneNumberDesc,
    PhoneNumberType,
    region_code_for_country_code,
)

# Limits copied from phonenumbers.phonenumberutil (private there).
_MIN_LENGTH_FOR_NSN = 2
_MAX_LENGTH_FOR_NSN = 17
_MAX_LENGTH_COUNTRY_CODE = 3
_MAX_INPUT_STRING_LENGTH = 250
# Shortest digit string phonenumbers considers viable with or without a '+'.
_MIN_VIABLE_DIGITS = 3
_NON_GEO_REGION = "001"


class FastResult(NamedTuple):
    """A valid number as phonenumbers would parse it: no policy applied yet."""

    country_code: int
    national: str  # national significant number
    region: str
    number_type: int  # a phonenumbers.PhoneNumberType value


@dataclass(frozen=True, slots=True)
class _Desc:
    """One PhoneNumberDesc, compiled; mirrors ``_is_number_matching_desc``."""

    pattern: re.Pattern[str] | None
    lengths: frozenset[int]

    def matches(self, nsn: str) -> bool:
        if self.pattern is None:
            return False
        if self.lengths and len(nsn) not in self.lengths:
            return False
        return self.pattern.fullmatch(nsn) is not None


def _compile_desc(desc: PhoneNumberDesc | None) -> _Desc:
    pattern = desc.national_number_pattern if desc is not None else None
    return _Desc(
        pattern=re.compile(pattern) if pattern else None,
        lengths=frozenset(desc.possible_length) if desc is not None else frozenset(),
    )


def _compile_optional(pattern: str | None) -> re.Pattern[str] | None:
    """Compile a pattern phonenumbers uses whenever it is not None (even when empty)."""
    return re.compile(pattern) if pattern is not None else None


@dataclass(frozen=True, slots=True)
class RegionPlan:
    """Everything the fast path needs about one region, compiled once."""

    region: str
    country_code: int
    general: _Desc
    general_lengths: tuple[int, ...]
    general_local_lengths: tuple[int, ...]
    special_types: tuple[tuple[int, _Desc], ...]  # checked in phonenumbers' order
    fixed_line: _Desc
    mobile: _Desc
    same_mobile_and_fixed_line: bool
    national_prefix: re.Pattern[str] | None
    national_prefix_transform: str | None
    idd: re.Pattern[str] | None
    leading_digits: re.Pattern[str] | None

    def matches_general(self, number: str) -> bool:
        """``_match_national_number(number, general_desc, False)``: pattern only, no lengths."""
        pattern = self.general.pattern
        return pattern is not None and pattern.fullmatch(number) is not None


@functools.cache
def plan_for(region: str) -> RegionPlan | None:
    """The compiled plan of a geographic region, or None when phonenumbers has no metadata."""
    meta = PhoneMetadata.metadata_for_region(region, None)
    if meta is None or meta.country_code is None or meta.general_desc is None:
        return None
    general = meta.general_desc
    if not general.possible_length:
        return None  # phonenumbers' length test assumes lengths; leave such a region to it
    transform = meta.national_prefix_transform_rule or None
    parsing_prefix = meta.national_prefix_for_parsing
    national_prefix = re.compile(parsing_prefix) if parsing_prefix else None
    if transform is not None and (national_prefix is None or national_prefix.groups == 0):
        return None  # phonenumbers itself would fail on such metadata; never seen in practice
    special = (
        (PhoneNumberType.PREMIUM_RATE, meta.premium_rate),
        (PhoneNumberType.TOLL_FREE, meta.toll_free),
        (PhoneNumberType.SHARED_COST, meta.shared_cost),
        (PhoneNumberType.VOIP, meta.voip),
        (PhoneNumberType.PERSONAL_NUMBER, meta.personal_number),
        (PhoneNumberType.PAGER, meta.pager),
        (PhoneNumberType.UAN, meta.uan),
        (PhoneNumberType.VOICEMAIL, meta.voicemail),
    )
    return RegionPlan(
        region=region,
        country_code=meta.country_code,
        general=_compile_desc(general),
        general_lengths=tuple(general.possible_length),
        general_local_lengths=tuple(general.possible_length_local_only),
        special_types=tuple((kind, compiled) for kind, desc in special if (compiled := _compile_desc(desc)).pattern),
        fixed_line=_compile_desc(meta.fixed_line),
        mobile=_compile_desc(meta.mobile),
        same_mobile_and_fixed_line=bool(meta.same_mobile_and_fixed_line_pattern),
        national_prefix=national_prefix,
        national_prefix_transform=transform,
        idd=_compile_optional(meta.international_prefix),
        leading_digits=_compile_optional(meta.leading_digits),
    )


def number_type(nsn: str, plan: RegionPlan) -> int:
    """Mirrors ``_number_type_helper``; returns a PhoneNumberType value (UNKNOWN = invalid)."""
    if not plan.general.matches(nsn):
        return PhoneNumberType.UNKNOWN
    for kind, desc in plan.special_types:
        if desc.matches(nsn):
            return kind
    if plan.fixed_line.matches(nsn):
        if plan.same_mobile_and_fixed_line or plan.mobile.matches(nsn):
            return PhoneNumberType.FIXED_LINE_OR_MOBILE
        return PhoneNumberType.FIXED_LINE
    if not plan.same_mobile_and_fixed_line and plan.mobile.matches(nsn):
        return PhoneNumberType.MOBILE
    return PhoneNumberType.UNKNOWN


def _length_result(number: str, plan: RegionPlan) -> str:
    """Mirrors ``_test_number_length`` for the general description (type UNKNOWN)."""
    length = len(number)
    if length in plan.general_local_lengths:
        return "local_only"
    lengths = plan.general_lengths
    if lengths[0] > length:
        return "too_short"
    if lengths[0] == length:
        return "possible"
    if lengths[-1] < length:
        return "too_long"
    return "possible" if length in lengths[1:] else "invalid_length"


def _strip_national_prefix(number: str, plan: RegionPlan) -> str:
    """Mirrors ``_maybe_strip_national_prefix_carrier_code`` (carrier code dropped)."""
    if not number or plan.national_prefix is None:
        return number
    match = plan.national_prefix.match(number)
    if match is None:
        return number
    viable_before = plan.matches_general(number)
    transform = plan.national_prefix_transform
    if transform is None or match.groups()[-1] is None:
        stripped = number[match.end() :]
    else:
        stripped = plan.national_prefix.sub(transform, number, count=1)
    if viable_before and not plan.matches_general(stripped):
        return number
    return stripped


def _extract_country_code(digits: str) -> tuple[int, str]:
    """Mirrors ``_extract_country_code``: (0, digits) when no known code leads."""
    if not digits or digits[0] == "0":
        return 0, digits
    for size in range(1, min(len(digits), _MAX_LENGTH_COUNTRY_CODE) + 1):
        code = int(digits[:size])
        if code in COUNTRY_CODE_TO_REGION_CODE:
            return code, digits[size:]
    return 0, digits


def _split_country_code(text: str, plan: RegionPlan) -> tuple[int, str] | None:
    """Mirrors ``_maybe_extract_country_code``; None where phonenumbers would raise.

    Returns (0, text) when no country code was written, as phonenumbers does:
    the number then stays with the default region's metadata even where that
    region shares its code with others (CA and US).
    """
    if text[0] == "+":
        full = text[1:]
        explicit = True
    else:
        full = text
        explicit = False
        if plan.idd is not None and (idd := plan.idd.match(text)) is not None:
            rest = text[idd.end() :]
            if not rest or rest[0] != "0":  # country codes never start with 0
                full, explicit = rest, True
    if explicit:
        if len(full) <= _MIN_LENGTH_FOR_NSN:
            return None
        code, rest = _extract_country_code(full)
        return (code, rest) if code else None
    code_text = str(plan.country_code)
    if full.startswith(code_text):
        candidate = _strip_national_prefix(full[len(code_text) :], plan)
        if (not plan.matches_general(full) and plan.matches_general(candidate)) or _length_result(
            full, plan
        ) == "too_long":
            return plan.country_code, candidate
    return 0, full


def _region_of(code: int, nsn: str) -> str | None:
    """Mirrors ``region_code_for_number`` for a country code we have plans for."""
    regions = COUNTRY_CODE_TO_REGION_CODE.get(code)
    if not regions:
        return None
    if len(regions) == 1:
        return regions[0]
    for region in regions:
        plan = plan_for(region)
        if plan is None:
            continue
        if plan.leading_digits is not None:
            if plan.leading_digits.match(nsn):
                return region
        elif number_type(nsn, plan) != PhoneNumberType.UNKNOWN:
            return region
    return None


def _locate(text: str, plan: RegionPlan) -> tuple[int, str, RegionPlan] | None:
    """Country code, national number and the plan to read it with; mirrors the top of ``parse``."""
    split = _split_country_code(text, plan)
    if split is None:
        return None
    code, national = split
    if code == 0:
        return plan.country_code, national, plan
    number_region = region_code_for_country_code(code)
    if number_region == _NON_GEO_REGION:
        return None
    if number_region != plan.region:
        other = plan_for(number_region)
        if other is None:
            return None
        plan = other
    return code, national, plan


def fast_parse(text: str, region: str) -> FastResult | None:
    """Parse ``text`` ('+' optional, then ASCII digits) the way phonenumbers would.

    Returns the valid number, or None when the fast path does not apply or the
    number is not valid: the caller then asks phonenumbers, which also words
    the rejection.
    """
    digit_count = len(text) - (text[:1] == "+")
    if digit_count < _MIN_VIABLE_DIGITS or len(text) > _MAX_INPUT_STRING_LENGTH:
        return None
    default_plan = plan_for(region)
    located = _locate(text, default_plan) if default_plan is not None else None
    if located is None:
        return None
    code, national, plan = located
    if len(national) < _MIN_LENGTH_FOR_NSN:
        return None
    stripped = _strip_national_prefix(national, plan)
    if _length_result(stripped, plan) not in ("too_short", "local_only", "invalid_length"):
        national = stripped
    if not _MIN_LENGTH_FOR_NSN <= len(national) <= _MAX_LENGTH_FOR_NSN or national[0] == "0":
        return None  # a leading zero needs phonenumbers' italian_leading_zero handling
    found = _region_of(code, national)
    found_plan = None if found is None else plan if found == plan.region else plan_for(found)
    if found is None or found_plan is None or found_plan.country_code != code:
        return None
    kind = number_type(national, found_plan)
    if kind == PhoneNumberType.UNKNOWN:
        return None
    return FastResult(code, national, found, kind)
