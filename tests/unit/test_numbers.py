"""Number normalisation, policy, variants and their config parsers, pinned case by case.

All numbers here are fictional (139 0000 xxxx, 010 1234 5678, the US 555-01xx
range) or phonenumbers' own metadata examples.
"""

from __future__ import annotations

import pytest

from shared.errors import InvalidNumber, PermanentError
from shared.numbers import (
    DEFAULT_ALLOWED_TYPES,
    DEFAULT_VARIANT_ORDER,
    DialVariant,
    NormalisedNumber,
    NumberType,
    VariantKind,
    dial_variants,
    normalise,
    normalise_slow,
    parse_number_types,
    parse_variant_order,
    preferred_first,
)
from shared.numbers_fast import fast_parse
from shared.numbers_text import clean

MOBILE = "+8613900001111"
BEIJING = "+861012345678"

GOOD = [
    ("13900001111", MOBILE, NumberType.MOBILE),
    ("139 0000 1111", MOBILE, NumberType.MOBILE),
    ("138-0000-2222", "+8613800002222", NumberType.MOBILE),
    ("139.0000.1111", MOBILE, NumberType.MOBILE),
    ("  139 0000 1111\t", MOBILE, NumberType.MOBILE),
    ("８６１３９００００１１１１", MOBILE, NumberType.MOBILE),
    ("＋８６ １３９００００１１１１", MOBILE, NumberType.MOBILE),
    ("+86 139 0000 1111", MOBILE, NumberType.MOBILE),
    ("(+86) 139-0000-1111", MOBILE, NumberType.MOBILE),
    ("8613900001111", MOBILE, NumberType.MOBILE),
    ("86 139 0000 1111", MOBILE, NumberType.MOBILE),
    ("0086 139 0000 1111", MOBILE, NumberType.MOBILE),
    ("tel:+86-139-0000-1111", MOBILE, NumberType.MOBILE),
    ("TEL: 13900001111", MOBILE, NumberType.MOBILE),
    ("17951 139 0000 1111", MOBILE, NumberType.MOBILE),  # carrier-selection prefix
    ("(010) 1234 5678", BEIJING, NumberType.FIXED_LINE),
    ("010-12345678", BEIJING, NumberType.FIXED_LINE),
    ("010\u30001234\u30005678", BEIJING, NumberType.FIXED_LINE),  # ideographic spaces
    ("+86 (0)10 1234 5678", BEIJING, NumberType.FIXED_LINE),
    ("+86 10 1234 5678", BEIJING, NumberType.FIXED_LINE),
    ("86 10 1234 5678", BEIJING, NumberType.FIXED_LINE),
    ("0086 10 1234 5678", BEIJING, NumberType.FIXED_LINE),
]


@pytest.mark.parametrize(("raw", "e164", "kind"), GOOD)
def test_common_written_forms_normalise_to_one_e164(raw: str, e164: str, kind: NumberType) -> None:
    """Every way people write a CN number lands on the same E.164 and type."""
    number = normalise(raw, "CN")
    assert number.e164 == e164
    assert number.number_type is kind
    assert number.region == "CN"
    assert number.country_code == 86
    assert number.e164 == f"+86{number.national}"


@pytest.mark.parametrize(("raw", "e164", "kind"), GOOD)
def test_slow_path_agrees_on_the_table(raw: str, e164: str, kind: NumberType) -> None:
    """phonenumbers alone gives the same answers as the fast path on every good case."""
    assert normalise_slow(raw, "CN") == normalise(raw, "CN")


@pytest.mark.parametrize("raw", ["13900001111", "8613900001111", "+8613900001111", "008613900001111", "01012345678"])
def test_fast_path_covers_the_common_cases(raw: str) -> None:
    """Plain digits, with or without a country code, never need phonenumbers itself."""
    assert fast_parse(clean(raw), "CN") is not None


BAD = [
    ("", "empty"),
    ("   ", "empty"),
    ("abc", "letters"),
    ("139-0000-ABCD", "letters"),
    ("1-800-FLOWERS", "letters"),
    ("139 0000 1111 #2", "'#'"),
    ("139*0000", "'*'"),
    ("86+13900001111", "only allowed at the start"),
    ("+", "no digits"),
    ("1", "too short"),
    ("1390000", "too short"),
    ("13900001", "too short"),
    ("139000011112", "too long"),
    ("1390000111122223333", "too long"),
    ("+999 1234 5678", "unknown country code"),
    ("12000000000", "not a valid number for region CN"),
    ("16812345", "premium-rate numbers are never dialled"),
    ("4001234567", "shared-cost numbers are never dialled"),
    ("8001234567", "toll-free numbers are not among the campaign's allowed types"),
    ("+1 201 555 0123", "an international number (US) outside the campaign's allowed regions"),
]


@pytest.mark.parametrize(("raw", "reason"), BAD)
def test_rejections_say_why(raw: str, reason: str) -> None:
    """A rejected row carries a reason a person can act on, in the error message too."""
    with pytest.raises(InvalidNumber) as caught:
        normalise(raw, "CN")
    assert reason in caught.value.reason
    assert reason in str(caught.value)
    assert caught.value.raw == raw
    assert isinstance(caught.value, PermanentError)


@pytest.mark.parametrize(("raw", "reason"), BAD)
def test_slow_path_rejects_with_the_same_reason(raw: str, reason: str) -> None:
    """Both paths word a rejection identically, so upload reports do not depend on the path."""
    with pytest.raises(InvalidNumber) as caught:
        normalise_slow(raw, "CN")
    assert reason in caught.value.reason


def test_foreign_number_accepted_when_its_region_is_allowed() -> None:
    """allowed_regions opens a campaign to other countries, number by number region."""
    number = normalise("+1 201 555 0123", "CN", allowed_regions=frozenset({"CN", "US"}))
    assert number == NormalisedNumber("+12015550123", "US", 1, "2015550123", NumberType.FIXED_LINE_OR_MOBILE)


def test_allowed_regions_can_exclude_the_default_region() -> None:
    """A campaign limited to US numbers rejects even a CN number written nationally."""
    with pytest.raises(InvalidNumber, match="outside the campaign's allowed regions"):
        normalise("13900001111", "CN", allowed_regions=frozenset({"US"}))


def test_premium_rate_dialled_only_when_listed_explicitly() -> None:
    """The toll-fraud guard yields only to an explicit allowed_types entry."""
    types = DEFAULT_ALLOWED_TYPES | {NumberType.PREMIUM_RATE}
    assert normalise("16812345", "CN", allowed_types=types).number_type is NumberType.PREMIUM_RATE


def test_type_outside_allowed_types_is_rejected() -> None:
    """A mobiles-only campaign skips landlines."""
    with pytest.raises(InvalidNumber, match="fixed-line numbers are not among"):
        normalise("010 1234 5678", "CN", allowed_types=frozenset({NumberType.MOBILE}))


def test_other_default_region_reads_national_numbers_its_way() -> None:
    """The default region decides how a number without a country code is read."""
    number = normalise("(201) 555-0123", "US")
    assert (number.e164, number.region) == ("+12015550123", "US")


def test_unknown_region_is_a_configuration_error() -> None:
    """A bad region is the campaign's fault, not the row's: ValueError, not InvalidNumber."""
    with pytest.raises(ValueError, match="unknown region 'XX'"):
        normalise("13900001111", "XX")


# --- dial variants ----------------------------------------------------------------------------


def test_mobile_variants_in_default_order() -> None:
    """The DESIGN.md example: national, country code, E.164."""
    assert [str(v) for v in dial_variants("139 0000 1111", "CN")] == [
        "13900001111",
        "8613900001111",
        "+8613900001111",
    ]


def test_landline_national_variant_keeps_the_trunk_prefix() -> None:
    """Inside China a Beijing landline is dialled 010...; the other forms drop the 0."""
    variants = dial_variants("010 1234 5678", "CN", order=list(VariantKind))
    assert variants == [
        DialVariant(VariantKind.NATIONAL, "01012345678"),
        DialVariant(VariantKind.COUNTRY_CODE, "861012345678"),
        DialVariant(VariantKind.E164, "+861012345678"),
        DialVariant(VariantKind.IDD, "00861012345678"),
    ]


def test_variants_follow_the_trunk_order() -> None:
    """Order and set are trunk settings."""
    order = (VariantKind.E164, VariantKind.IDD)
    assert [str(v) for v in dial_variants(MOBILE, "CN", order)] == ["+8613900001111", "008613900001111"]


def test_variants_of_a_normalised_number_skip_reparsing() -> None:
    """A NormalisedNumber is spelled as is; a stored foreign number needs no policy re-check."""
    number = normalise("+1 201 555 0123", "CN", allowed_regions=frozenset({"US"}))
    assert [str(v) for v in dial_variants(number, "US", list(VariantKind))] == [
        "2015550123",
        "12015550123",
        "+12015550123",
        "01112015550123",
    ]


def test_empty_variant_order_is_refused() -> None:
    """An empty order would silently dial nothing."""
    with pytest.raises(ValueError, match="empty"):
        dial_variants(MOBILE, "CN", ())


def test_preferred_variant_moves_to_the_front() -> None:
    """The variant a trunk accepted last time is tried first; the rest keep their order."""
    variants = dial_variants(MOBILE, "CN")
    moved = preferred_first(variants, VariantKind.E164)
    assert [v.kind for v in moved] == [VariantKind.E164, VariantKind.NATIONAL, VariantKind.COUNTRY_CODE]


@pytest.mark.parametrize("preferred", [None, VariantKind.IDD])
def test_unknown_or_absent_preference_keeps_order(preferred: VariantKind | None) -> None:
    """No remembered variant, or one this trunk does not use: nothing moves."""
    variants = dial_variants(MOBILE, "CN")
    assert preferred_first(variants, preferred) == variants


# --- config parsers ---------------------------------------------------------------------------

N, CC, E, IDD = VariantKind.NATIONAL, VariantKind.COUNTRY_CODE, VariantKind.E164, VariantKind.IDD


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("national, 86, +86", (N, CC, E)),
        ("national,cc,e164", (N, CC, E)),
        ("+86,0086", (E, IDD)),
        ("PLUS, IDD, National", (E, IDD, N)),
        ("1, +1, 001", (CC, E, IDD)),
        ("e164", (E,)),
    ],
)
def test_variant_order_spellings(text: str, expected: tuple[VariantKind, ...]) -> None:
    """Operators may write the forms by example or by name."""
    assert parse_variant_order(text) == expected


def test_default_variant_order_round_trips() -> None:
    """The default order is expressible in config."""
    assert parse_variant_order(",".join(k.value for k in DEFAULT_VARIANT_ORDER)) == DEFAULT_VARIANT_ORDER


@pytest.mark.parametrize(
    ("text", "named"),
    [("", "empty"), (" ", "empty"), ("national, mobile", "'mobile'"), ("86, cc", "'cc'"), ("national,,86", "''")],
)
def test_bad_variant_orders_name_the_word(text: str, named: str) -> None:
    """Unknown words, repeats and empty lists fail loudly, naming the culprit."""
    with pytest.raises(ValueError, match=named):
        parse_variant_order(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mobile", {NumberType.MOBILE, NumberType.FIXED_LINE_OR_MOBILE}),
        ("fixed", {NumberType.FIXED_LINE, NumberType.FIXED_LINE_OR_MOBILE}),
        ("Landline, toll-free", {NumberType.FIXED_LINE, NumberType.FIXED_LINE_OR_MOBILE, NumberType.TOLL_FREE}),
        ("mobile,fixed_line", set(DEFAULT_ALLOWED_TYPES)),
        ("premium_rate", {NumberType.PREMIUM_RATE}),
    ],
)
def test_number_type_spellings(text: str, expected: set[NumberType]) -> None:
    """fixed/landline mean fixed_line; mobile or fixed_line admit fixed_line_or_mobile."""
    assert parse_number_types(text) == expected


@pytest.mark.parametrize(("text", "named"), [("", "empty"), ("mobile, cellphone", "'cellphone'")])
def test_bad_number_types_name_the_word(text: str, named: str) -> None:
    """A typo in a campaign's types is reported, never silently ignored."""
    with pytest.raises(ValueError, match=named):
        parse_number_types(text)
