"""Phone numbers: normalisation to E.164, dialling policy, and dial variants.

Pure: imports phonenumbers and the standard library only. Every number the
dialer stores went through :func:`normalise`, which

1. cleans the written form (:mod:`shared.numbers_text`: separators, full-width
   digits and plus as typed in Chinese IMEs, a ``tel:`` prefix) and rejects
   letters and other junk;
2. parses and validates it: a fast path compiled from phonenumbers' metadata
   (:mod:`shared.numbers_fast`) for plain digits, phonenumbers itself for the
   rest and for every rejection, so both agree on every answer;
3. applies the campaign's policy: only allowed regions and number types. The
   toll-fraud guard lives here: premium-rate and shared-cost numbers are
   refused unless a campaign lists them explicitly.

Trunks differ in the form they accept (``13900001111``, ``8613900001111``,
``+8613900001111``, ``008613900001111``), so :func:`dial_variants` spells one
number in each form, in the trunk's order, and :func:`preferred_first` moves
the form a trunk accepted last time to the front.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

from shared.errors import InvalidNumber
from shared.numbers_fast import FastResult, RegionPlan, fast_parse, plan_for
from shared.numbers_fast import number_type as _fast_number_type
from shared.numbers_text import clean


class NumberType(StrEnum):
    """What kind of line a number is; the words double as config and CSV values."""

    MOBILE = "mobile"
    FIXED_LINE = "fixed_line"
    FIXED_LINE_OR_MOBILE = "fixed_line_or_mobile"  # regions (US) whose plans cannot tell them apart
    TOLL_FREE = "toll_free"
    PREMIUM_RATE = "premium_rate"
    SHARED_COST = "shared_cost"
    VOIP = "voip"
    PERSONAL = "personal"
    PAGER = "pager"
    UAN = "uan"
    VOICEMAIL = "voicemail"
    UNKNOWN = "unknown"


DEFAULT_ALLOWED_TYPES = frozenset({NumberType.MOBILE, NumberType.FIXED_LINE, NumberType.FIXED_LINE_OR_MOBILE})

_FROM_PHONENUMBERS = {
    PhoneNumberType.FIXED_LINE: NumberType.FIXED_LINE,
    PhoneNumberType.MOBILE: NumberType.MOBILE,
    PhoneNumberType.FIXED_LINE_OR_MOBILE: NumberType.FIXED_LINE_OR_MOBILE,
    PhoneNumberType.TOLL_FREE: NumberType.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE: NumberType.PREMIUM_RATE,
    PhoneNumberType.SHARED_COST: NumberType.SHARED_COST,
    PhoneNumberType.VOIP: NumberType.VOIP,
    PhoneNumberType.PERSONAL_NUMBER: NumberType.PERSONAL,
    PhoneNumberType.PAGER: NumberType.PAGER,
    PhoneNumberType.UAN: NumberType.UAN,
    PhoneNumberType.VOICEMAIL: NumberType.VOICEMAIL,
}
# Types that cost the caller money per call: dialled only when a campaign names them.
_TOLL_FRAUD_TYPES = frozenset({NumberType.PREMIUM_RATE, NumberType.SHARED_COST})
_TYPE_SYNONYMS = {"fixed": NumberType.FIXED_LINE, "landline": NumberType.FIXED_LINE}


def parse_number_types(text: str) -> frozenset[NumberType]:
    """Parse a comma-separated list of number types from config or a campaign form.

    ``fixed`` and ``landline`` mean ``fixed_line``; naming mobile or fixed_line
    also admits ``fixed_line_or_mobile``, since some regions (US, CA) only ever
    classify numbers that way and "mobiles only" must still reach them.
    """
    words = [word.strip().lower().replace("-", "_").replace(" ", "_") for word in text.split(",")]
    if words == [""]:
        raise ValueError("number types: the list is empty; use e.g. 'mobile,fixed_line'")
    types: set[NumberType] = set()
    for word in words:
        try:
            types.add(_TYPE_SYNONYMS.get(word) or NumberType(word))
        except ValueError:
            known = ", ".join(t.value for t in NumberType)
            raise ValueError(f"number types: unknown type {word!r} in {text!r}; known: {known}") from None
    if types & {NumberType.MOBILE, NumberType.FIXED_LINE}:
        types.add(NumberType.FIXED_LINE_OR_MOBILE)
    return frozenset(types)


class VariantKind(StrEnum):
    """One way of writing a number for a trunk; also the metric label ``variant``."""

    NATIONAL = "national"  # 13900001111; landlines keep the trunk prefix: 01012345678
    COUNTRY_CODE = "cc"  # 8613900001111
    E164 = "e164"  # +8613900001111
    IDD = "idd"  # 008613900001111


DEFAULT_VARIANT_ORDER = (VariantKind.NATIONAL, VariantKind.COUNTRY_CODE, VariantKind.E164)

_VARIANT_WORDS = {
    "national": VariantKind.NATIONAL,
    "cc": VariantKind.COUNTRY_CODE,
    "e164": VariantKind.E164,
    "plus": VariantKind.E164,
    "idd": VariantKind.IDD,
}
# Spellings by example, for any country code: 86, +86, 0086 (and 1, +1, 001).
_VARIANT_SHAPES = (
    (re.compile(r"[1-9]\d{0,2}"), VariantKind.COUNTRY_CODE),
    (re.compile(r"\+[1-9]\d{0,2}"), VariantKind.E164),
    (re.compile(r"00[1-9]\d{0,2}"), VariantKind.IDD),
)


def _variant_kind(word: str) -> VariantKind | None:
    kind = _VARIANT_WORDS.get(word.lower())
    if kind is None:
        kind = next((k for shape, k in _VARIANT_SHAPES if shape.fullmatch(word)), None)
    return kind


def parse_variant_order(text: str) -> tuple[VariantKind, ...]:
    """Parse a trunk's variant order, e.g. ``"national, 86, +86"``.

    Operators write the forms by example, so ``86``/``cc``, ``+86``/``e164``/
    ``plus`` and ``0086``/``idd`` are all accepted. Repeats are refused: they
    usually mean a typo for the form that is missing.
    """
    words = [word.strip() for word in text.split(",")]
    if words == [""]:
        raise ValueError("variant order: the list is empty; use e.g. 'national, 86, +86'")
    order: list[VariantKind] = []
    for word in words:
        kind = _variant_kind(word)
        if kind is None:
            raise ValueError(
                f"variant order: unknown variant {word!r} in {text!r}; "
                "use national, 86 (or cc), +86 (or e164, plus), 0086 (or idd)"
            )
        if kind in order:
            raise ValueError(f"variant order: {word!r} repeats {kind.value!r} in {text!r}")
        order.append(kind)
    return tuple(order)


@dataclass(frozen=True, slots=True)
class NormalisedNumber:
    """A valid number that passed the campaign's policy."""

    e164: str  # +8613900001111: the stored and deduplicated form
    region: str  # region of the number itself, e.g. "CN"
    country_code: int
    national: str  # national significant number: no trunk prefix, no country code
    number_type: NumberType


# ---------------------------------------------------------------------------------------------
# Parsing: fast path, slow path, rejection reasons

_PARSE_ERROR_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "starts with an unknown country code",
    NumberParseException.NOT_A_NUMBER: "too short to be a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the international prefix",
    NumberParseException.TOO_SHORT_NSN: "too short to be a phone number",
    NumberParseException.TOO_LONG: "too long to be a phone number",
}


def _check_region(region: str) -> None:
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown region {region!r}: use an ISO 3166 code such as 'CN'")


def _length_hint(nsn: str, plan: RegionPlan) -> str | None:
    """'too short' if padding makes ``nsn`` valid, 'too long' if truncating does, else None."""
    for length in plan.general_lengths:
        if length > len(nsn):
            if any(
                _fast_number_type(nsn + digit * (length - len(nsn)), plan) != PhoneNumberType.UNKNOWN
                for digit in "0123456789"
            ):
                return "too short"
        elif length < len(nsn) and _fast_number_type(nsn[:length], plan) != PhoneNumberType.UNKNOWN:
            return "too long"
    return None


def _invalid_reason(number: phonenumbers.PhoneNumber) -> str:
    """Word why phonenumbers found a parsed number invalid: too short, too long, or neither.

    Length alone cannot tell: 1390000 has a length CN numbers may have, yet it
    is a mobile cut short. So the number is also tried padded and truncated
    to each length the region allows; if that makes it valid, it is too short
    (or too long), which is what the person fixing the row needs to hear.
    This only words the reason; validity is decided by phonenumbers.
    """
    code = number.country_code or 0
    region = phonenumbers.region_code_for_country_code(code)
    label = region if region.isalpha() and region != "ZZ" else f"+{code}"
    nsn = phonenumbers.national_significant_number(number)
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason == phonenumbers.ValidationResult.TOO_SHORT:
        return f"too short for a {label} number ({len(nsn)} digits)"
    if reason == phonenumbers.ValidationResult.TOO_LONG:
        return f"too long for a {label} number ({len(nsn)} digits)"
    plan = plan_for(region)
    hint = _length_hint(nsn, plan) if plan is not None else None
    if hint is not None:
        return f"{hint} for a {label} number ({len(nsn)} digits)"
    return f"not a valid number for region {label}"


def _from_fast(found: FastResult) -> NormalisedNumber:
    return NormalisedNumber(
        e164=f"+{found.country_code}{found.national}",
        region=found.region,
        country_code=found.country_code,
        national=found.national,
        number_type=_FROM_PHONENUMBERS[found.number_type],
    )


def _parse_slow(raw: str, text: str, region: str) -> NormalisedNumber:
    """Parse and validate with phonenumbers alone; every rejection is worded here."""
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        raise InvalidNumber(raw, _PARSE_ERROR_REASONS.get(exc.error_type, str(exc))) from None
    number_region = phonenumbers.region_code_for_number(number)
    if number_region is None or not phonenumbers.is_valid_number(number):
        raise InvalidNumber(raw, _invalid_reason(number))
    kind = _FROM_PHONENUMBERS.get(phonenumbers.number_type(number), NumberType.UNKNOWN)
    return NormalisedNumber(
        e164=phonenumbers.format_number(number, PhoneNumberFormat.E164),
        region=number_region,
        country_code=number.country_code or 0,
        national=phonenumbers.national_significant_number(number),
        number_type=kind,
    )


_TYPE_WORDS = {
    NumberType.PREMIUM_RATE: "premium-rate",
    NumberType.SHARED_COST: "shared-cost",
    NumberType.TOLL_FREE: "toll-free",
    NumberType.FIXED_LINE: "fixed-line",
    NumberType.FIXED_LINE_OR_MOBILE: "fixed-line or mobile",
    NumberType.VOIP: "VoIP",
    NumberType.UAN: "UAN (universal access)",
}


def _apply_policy(
    raw: str,
    number: NormalisedNumber,
    region: str,
    allowed_regions: frozenset[str] | None,
    allowed_types: frozenset[NumberType],
) -> NormalisedNumber:
    regions = allowed_regions if allowed_regions is not None else frozenset({region})
    if number.region not in regions:
        where = f"an international number ({number.region})" if number.region != region else "a number"
        allowed = ", ".join(sorted(regions)) or "none"
        raise InvalidNumber(raw, f"{where} outside the campaign's allowed regions ({allowed})")
    if number.number_type not in allowed_types:
        word = _TYPE_WORDS.get(number.number_type, number.number_type.value)
        if number.number_type in _TOLL_FRAUD_TYPES:
            raise InvalidNumber(raw, f"{word} numbers are never dialled (toll-fraud guard)")
        allowed = ", ".join(sorted(t.value for t in allowed_types)) or "none"
        raise InvalidNumber(raw, f"{word} numbers are not among the campaign's allowed types ({allowed})")
    return number


def normalise(
    raw: str,
    region: str = "CN",
    *,
    allowed_regions: frozenset[str] | None = None,
    allowed_types: frozenset[NumberType] = DEFAULT_ALLOWED_TYPES,
) -> NormalisedNumber:
    """Normalise a written number to E.164 and check it against the campaign's policy.

    ``region`` is the campaign's default region, used for numbers written
    without a country code; ``allowed_regions`` defaults to just that region.
    Raises InvalidNumber whose reason says what is wrong; ValueError for an
    unknown ``region`` (a configuration error, not a data error).
    """
    _check_region(region)
    text = clean(raw)
    found = fast_parse(text, region)
    number = _from_fast(found) if found is not None else _parse_slow(raw, text, region)
    return _apply_policy(raw, number, region, allowed_regions, allowed_types)


def normalise_slow(
    raw: str,
    region: str = "CN",
    *,
    allowed_regions: frozenset[str] | None = None,
    allowed_types: frozenset[NumberType] = DEFAULT_ALLOWED_TYPES,
) -> NormalisedNumber:
    """:func:`normalise` using phonenumbers only: the reference the fast path is tested against."""
    _check_region(region)
    number = _parse_slow(raw, clean(raw), region)
    return _apply_policy(raw, number, region, allowed_regions, allowed_types)


# ---------------------------------------------------------------------------------------------
# Dial variants

_ALL_TYPES = frozenset(NumberType)
_ALL_REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)
_PLAIN_DIGITS = re.compile(r"\d+")


class DialVariant(NamedTuple):
    """One spelling of a number to put in the INVITE's request URI."""

    kind: VariantKind
    digits: str

    def __str__(self) -> str:
        return self.digits


@functools.lru_cache(maxsize=65536)
def _national_digits(e164: str) -> str:
    """Digits of the number's own national format: with the trunk prefix where one is dialled."""
    formatted = phonenumbers.format_number(phonenumbers.parse(e164, None), PhoneNumberFormat.NATIONAL)
    return "".join(char for char in formatted if char.isdigit())


@functools.cache
def _idd_prefix(region: str) -> str:
    """The international prefix dialled from ``region`` (00 in CN, 011 in US)."""
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region, None)
    if meta is not None:
        if meta.preferred_international_prefix:
            return meta.preferred_international_prefix
        if meta.international_prefix and _PLAIN_DIGITS.fullmatch(meta.international_prefix):
            return meta.international_prefix
    return "00"  # the ITU-recommended prefix, for regions whose metadata names none


def dial_variants(
    number: str | NormalisedNumber,
    region: str = "CN",
    order: Sequence[VariantKind] = DEFAULT_VARIANT_ORDER,
) -> list[DialVariant]:
    """Spell ``number`` in each form of ``order``, as dialled from ``region`` (the trunk's).

    Spelling is not policing: a string is normalised with every region and
    type allowed, because campaign policy was applied when the number was
    stored. Forms that come out identical are listed once.
    """
    _check_region(region)
    if not isinstance(number, NormalisedNumber):
        number = normalise(number, region, allowed_regions=_ALL_REGIONS, allowed_types=_ALL_TYPES)
    if not order:
        raise ValueError("dial variants: the variant order is empty")
    with_code = f"{number.country_code}{number.national}"
    spellings = {
        VariantKind.NATIONAL: _national_digits(number.e164),
        VariantKind.COUNTRY_CODE: with_code,
        VariantKind.E164: f"+{with_code}",
        VariantKind.IDD: f"{_idd_prefix(region)}{with_code}",
    }
    variants: list[DialVariant] = []
    for kind in order:
        digits = spellings[kind]
        if all(digits != seen.digits for seen in variants):
            variants.append(DialVariant(kind, digits))
    return variants


def preferred_first(variants: Sequence[DialVariant], preferred: VariantKind | None) -> list[DialVariant]:
    """Move the variant a trunk accepted last time to the front; keep the rest in order."""
    for index, variant in enumerate(variants):
        if variant.kind == preferred:
            return [variant, *variants[:index], *variants[index + 1 :]]
    return list(variants)
