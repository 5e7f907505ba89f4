"""Number rules at their edges: the exact words a person fixing a row reads, defaults, and variant spelling.

Written from the survivors of ``scripts/mutation`` (README, "Mutation
testing"): each assertion fails for a mutant no other fast test caught.
"""

from __future__ import annotations

import phonenumbers
import pytest

from shared.errors import InvalidNumber
from shared.numbers import (
    NumberType,
    VariantKind,
    dial_variants,
    normalise,
    normalise_slow,
    parse_number_types,
    parse_variant_order,
    preferred_first,
)

EVERYWHERE = frozenset(phonenumbers.SUPPORTED_REGIONS)


def reason(raw: str, **policy: object) -> str:
    """The reason both parsers give, and that both keep the row as written."""
    reasons = []
    for parse in (normalise, normalise_slow):
        with pytest.raises(InvalidNumber) as caught:
            parse(raw, "CN", **policy)  # type: ignore[arg-type]
        assert caught.value.raw == raw
        reasons.append(caught.value.reason)
    assert reasons[0] == reasons[1]
    return reasons[0]


@pytest.mark.parametrize(("raw", "expected"), [
    ("1390000111", "too short for a CN number (10 digits)"),        # possible length, valid when padded
    ("139000011112", "too long for a CN number (12 digits)"),        # possible length, valid when cut
    ("+80012345", "too short for a +800 number (5 digits)"),          # a non-geographic code is named by number
    ("+800123456789", "too long for a +800 number (9 digits)"),
    ("+85212345", "not a valid number for region HK"),
    ("+870111111111", "not a valid number for region +870"),       # non-geographic: no plan to hint from
])
def test_invalid_numbers_say_what_is_wrong(raw: str, expected: str) -> None:
    """Too short, too long or just invalid, for which region, with the digit count."""
    assert reason(raw, allowed_regions=EVERYWHERE) == expected


def test_policy_messages_name_the_region_and_what_is_allowed() -> None:
    """Out-of-region and disallowed-type rejections say what the campaign allows (or 'none')."""
    assert reason("+85261234567") == "an international number (HK) outside the campaign's allowed regions (CN)"
    assert reason("+8613900001111", allowed_regions=frozenset()) == (
        "a number outside the campaign's allowed regions (none)")
    assert reason("+8613900001111", allowed_regions=frozenset({"HK", "MO"})) == (
        "a number outside the campaign's allowed regions (HK, MO)")
    assert reason("13900001111", allowed_types=frozenset({NumberType.FIXED_LINE, NumberType.VOIP})) == (
        "mobile numbers are not among the campaign's allowed types (fixed_line, voip)")
    assert reason("13900001111", allowed_types=frozenset()) == (
        "mobile numbers are not among the campaign's allowed types (none)")
    assert reason("+868001234567") == (
        "toll-free numbers are not among the campaign's allowed types (fixed_line, fixed_line_or_mobile, mobile)")


def test_config_lists_fail_with_their_exact_message() -> None:
    """Empty and unknown entries in the type and variant lists name the setting and the choices."""
    with pytest.raises(ValueError, match=r"^number types: the list is empty; use e\.g\. 'mobile,fixed_line'$"):
        parse_number_types("")
    known = ", ".join(t.value for t in NumberType)
    with pytest.raises(ValueError) as caught:
        parse_number_types("mobile,satellite")
    assert str(caught.value) == f"number types: unknown type 'satellite' in 'mobile,satellite'; known: {known}"
    with pytest.raises(ValueError, match=r"^variant order: the list is empty; use e\.g\. 'national, 86, \+86'$"):
        parse_variant_order("")
    with pytest.raises(ValueError) as caught:
        parse_variant_order("national, foo")
    assert str(caught.value) == ("variant order: unknown variant 'foo' in 'national, foo'; "
                                 "use national, 86 (or cc), +86 (or e164, plus), 0086 (or idd)")
    with pytest.raises(ValueError, match=r"^dial variants: the variant order is empty$"):
        dial_variants("+8613900001111", "CN", [])


def test_type_words_may_be_written_with_spaces_or_hyphens() -> None:
    """'toll free', 'Fixed Line' and 'fixed-line' are the same types as their underscore spellings."""
    assert parse_number_types("toll free") == {NumberType.TOLL_FREE}
    assert parse_number_types("Fixed Line") == parse_number_types("fixed-line") == {
        NumberType.FIXED_LINE, NumberType.FIXED_LINE_OR_MOBILE}


def test_default_region_is_china() -> None:
    """Without a region, numbers are read as Chinese and spelled as dialled from China."""
    assert normalise("13900001111").e164 == normalise_slow("13900001111").e164 == "+8613900001111"
    assert [v.digits for v in dial_variants("13900001111")] == ["13900001111", "8613900001111", "+8613900001111"]


def test_dial_variants_spell_any_stored_number_from_the_trunks_region() -> None:
    """Spelling is not policing: another region's or a toll-free number is spelled, from the given region."""
    assert [v.digits for v in dial_variants("+85261234567", "CN")] == ["61234567", "85261234567", "+85261234567"]
    assert [v.digits for v in dial_variants("61234567", "HK")] == ["61234567", "85261234567", "+85261234567"]
    assert dial_variants("+868001234567", "CN")[1].digits == "868001234567"


def test_preferred_variant_moves_to_the_front_keeping_all_others() -> None:
    """The accepted form first, then every other one in the configured order (none dropped)."""
    order = [VariantKind.NATIONAL, VariantKind.COUNTRY_CODE, VariantKind.E164, VariantKind.IDD]
    variants = dial_variants("+8613900001111", "CN", order)
    moved = preferred_first(variants, VariantKind.COUNTRY_CODE)
    assert [v.kind for v in moved] == [VariantKind.COUNTRY_CODE, VariantKind.NATIONAL, VariantKind.E164,
                                       VariantKind.IDD]
