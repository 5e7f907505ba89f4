"""Properties of number normalisation over generated input (hypothesis).

The generators write fictional-shaped CN mobiles and landlines, with every
prefix and separator style an upload may contain, plus foreign numbers and
arbitrary text. The key property is that the fast path, compiled from
phonenumbers' metadata, never disagrees with phonenumbers itself.
"""

from __future__ import annotations

from collections.abc import Callable

import phonenumbers
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneMetadata

from shared.errors import InvalidNumber
from shared.numbers import (
    NormalisedNumber,
    NumberType,
    VariantKind,
    dial_variants,
    normalise,
    normalise_slow,
)
from shared.numbers_fast import fast_parse

# Unit-test speed: enough examples to explore, few enough that the file stays around a second.
settings.register_profile(
    "numbers", max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
NUMBERS = settings.get_profile("numbers")
EQUIVALENCE = settings(NUMBERS, max_examples=400)

ALL_TYPES = frozenset(NumberType)
ALL_REGIONS = frozenset({"CN", "US", "CA", "GB", "DE", "IT", "HK"})
REGIONS = st.sampled_from(["CN", "CN", "CN", "US", "GB", "IT"])

# Built from integers rather than st.from_regex: the same shapes at a fraction of the cost.
cn_mobiles = st.builds(lambda second, rest: f"1{second}{rest:09d}", st.integers(3, 9), st.integers(0, 10**9 - 1))
cn_landlines = st.builds(
    lambda area, local, width: f"0{area}{local % 10**width:0{width}d}",
    st.one_of(st.just("10"), st.integers(20, 29), st.integers(300, 999)),
    st.integers(0, 10**8 - 1),
    st.integers(7, 8),
)
digit_runs = st.builds(
    lambda value, width: f"{value % 10**width:0{width}d}", st.integers(0, 10**19), st.integers(1, 19)
)
foreign = st.builds(
    lambda code, value, width: f"+{code}{value % 10**width:0{width}d}",
    st.sampled_from(["1", "44", "39", "852", "7", "49"]),
    st.integers(0, 10**12),
    st.integers(6, 12),
)
# Regions with unusual plans: shared country codes (US/CA), leading zeros (IT), carrier
# prefixes and national-prefix rewriting (AR, MX, BR), overlapping fixed and mobile ranges (IN, DK).
SEEDED_REGIONS = ["CN", "US", "CA", "GB", "IT", "IN", "MX", "AR", "BR", "DE", "RU", "KZ", "DK", "HK"]


@st.composite
def seeded(draw: st.DrawFn) -> tuple[str, str]:
    """(text, region): a metadata example number of some type, its tail randomised, in some prefix style.

    Random digits alone rarely hit the narrow ranges of special number types; starting
    from phonenumbers' own examples reaches every type of every region listed above.
    """
    region = draw(st.sampled_from(SEEDED_REGIONS))
    meta = PhoneMetadata.metadata_for_region(region)
    assert meta is not None and meta.country_code is not None
    descs = [meta.mobile, meta.fixed_line, meta.toll_free, meta.premium_rate, meta.shared_cost, meta.voip, meta.uan]
    examples = [desc.example_number for desc in descs if desc is not None and desc.example_number]
    example = draw(st.sampled_from(examples))
    keep = draw(st.integers(0, len(example)))
    tail_length = max(0, len(example) - keep + draw(st.sampled_from([0, 0, 0, -1, 1])))
    tail = "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=tail_length, max_size=tail_length)))
    code = str(meta.country_code)
    prefix = draw(st.sampled_from(["", "", "0", "1", "+" + code, "+" + code + "0", code, "00" + code, "011" + code]))
    dial_from = draw(st.sampled_from([region, region, "CN", "US"]))
    return prefix + example[:keep] + tail, dial_from


PREFIXES = ["", "", "86", "+86", "0086", "+86 0", "0", "00", "+", "17951"]
SEPARATORS = ["", " ", "-", ".", "\u3000"]
FULL_WIDTH = str.maketrans("0123456789+", "０１２３４５６７８９＋")


@st.composite
def written(draw: st.DrawFn, digits: st.SearchStrategy[str]) -> str:
    """A number as a person might type it: a prefix, separators, maybe full-width."""
    body = draw(digits)
    prefix = draw(st.sampled_from(PREFIXES)) if body[:1] != "0" else draw(st.sampled_from(["", "+86 ", "86"]))
    separator = draw(st.sampled_from(SEPARATORS))
    cut = draw(st.integers(0, len(body)))
    text = f"{prefix}{separator}{body[:cut]}{separator}{body[cut:]}".strip()
    if draw(st.booleans()) and draw(st.booleans()):
        text = text.translate(FULL_WIDTH)
    return f"tel:{text}" if draw(st.integers(0, 9)) == 0 else text


numbers_as_written = st.one_of(
    written(cn_mobiles), written(cn_landlines), written(digit_runs), foreign, st.text(max_size=20)
)


def outcome(parse: Callable[..., NormalisedNumber], raw: str, region: str) -> NormalisedNumber | str:
    """The result of a parse, or the rejection reason, so two paths can be compared."""
    try:
        return parse(raw, region, allowed_regions=ALL_REGIONS, allowed_types=ALL_TYPES)
    except InvalidNumber as exc:
        return exc.reason


@EQUIVALENCE
@given(raw=numbers_as_written, region=REGIONS)
@example(raw="8613900001111", region="CN")
@example(raw="(201) 555-0123", region="CA")
@example(raw="+39 06 1234 5678", region="IT")
def test_fast_and_slow_paths_agree(raw: str, region: str) -> None:
    """normalise (fast path with fallback) and phonenumbers alone give the same answer or reason."""
    assert outcome(normalise, raw, region) == outcome(normalise_slow, raw, region)


@EQUIVALENCE
@given(case=seeded())
def test_fast_path_only_accepts_what_phonenumbers_accepts(case: tuple[str, str]) -> None:
    """Whenever the fast path answers on its own, in any region, phonenumbers agrees on all of it."""
    text, region = case
    found = fast_parse(text, region)
    if found is not None:
        number = phonenumbers.parse(text, region)
        assert phonenumbers.is_valid_number(number)
        assert found == (
            number.country_code,
            phonenumbers.national_significant_number(number),
            phonenumbers.region_code_for_number(number),
            phonenumbers.number_type(number),
        )


@NUMBERS
@given(raw=numbers_as_written, region=REGIONS)
def test_normalisation_is_idempotent(raw: str, region: str) -> None:
    """Re-normalising a stored E.164 gives it back unchanged (re-uploads dedupe)."""
    try:
        first = normalise(raw, region, allowed_regions=ALL_REGIONS, allowed_types=ALL_TYPES)
    except InvalidNumber:
        return
    again = normalise(first.e164, region, allowed_regions=ALL_REGIONS, allowed_types=ALL_TYPES)
    assert again == first


@NUMBERS
@given(raw=st.one_of(written(cn_mobiles), written(cn_landlines)))
def test_every_variant_parses_back_to_the_same_number(raw: str) -> None:
    """Whatever form a trunk is sent, it denotes the number that was stored."""
    try:
        number = normalise(raw, "CN", allowed_types=ALL_TYPES)
    except InvalidNumber:
        return
    for variant in dial_variants(number, "CN", list(VariantKind)):
        back = normalise(variant.digits, "CN", allowed_types=ALL_TYPES)
        assert back.e164 == number.e164, variant


@NUMBERS
@given(raw=st.text(max_size=40), region=REGIONS)
def test_arbitrary_text_raises_only_invalid_number(raw: str, region: str) -> None:
    """No input crashes an upload: anything unusable becomes an InvalidNumber with a reason."""
    try:
        normalise(raw, region)
    except InvalidNumber as exc:
        assert exc.reason
