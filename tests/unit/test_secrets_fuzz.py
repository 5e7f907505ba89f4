"""Fuzzing the two guards that stand between hostile input and harm: the number normaliser and log redaction.

The number normaliser decides what may be dialled (toll fraud, wrong
countries); whatever text an upload or the API hands it, it must either
return a number that phonenumbers itself calls valid and that fits the
campaign's policy, or raise InvalidNumber: never another exception, never a
quiet yes. The redactor is the last line before a secret reaches a log: a
registered secret must not survive it, whatever text surrounds it.
(CSV parsing is fuzzed in tests/unit/test_upload_validate.py and
test_upload_sniff.py by its authors.)
"""

from __future__ import annotations

import re

import phonenumbers
from hypothesis import example, given, settings
from hypothesis import strategies as st

from shared import logs as logs_module
from shared.errors import InvalidNumber
from shared.logs import redact, register_secret
from shared.numbers import DEFAULT_ALLOWED_TYPES, NumberType, normalise

FUZZ = settings(max_examples=300, deadline=None, database=None)
E164 = re.compile(r"\+[1-9]\d{6,14}")
REGIONS = ["CN", "HK", "US", "GB", "IT", "DE", "IN", "BR"]
TOLL_FRAUD = {NumberType.PREMIUM_RATE, NumberType.SHARED_COST}

# Text that looks like numbers: digits of several scripts, plus signs, separators, IDD prefixes, junk.
_digits = st.sampled_from(list("0123456789") + list("０１２３４５６７８９") + list("٠١٢٣٤٥٦٧٨٩") + list("०१२३४५६७८९"))
_noise = st.sampled_from([" ", "-", ".", "(", ")", "+", "＋", "\u3000", "/", "x", "ext", "#", "*", ",", "\t",
                          "tel:", "00", "0086", "+86", "+1", "+44", "\x00", "\u200b", "١", "e+10", ".0"])
number_like = st.lists(st.one_of(_digits, _noise), max_size=30).map("".join)
anything = st.one_of(number_like, st.text(max_size=40), st.binary(max_size=30).map(lambda b: b.decode("latin-1")))
policies = st.tuples(
    st.sampled_from(REGIONS),
    st.one_of(st.none(), st.frozensets(st.sampled_from(REGIONS), min_size=1, max_size=3)),
    st.one_of(st.just(DEFAULT_ALLOWED_TYPES), st.frozensets(st.sampled_from(list(NumberType)), min_size=1)),
)


@FUZZ
@given(raw=anything, policy=policies)
@example(raw="+8616812345", policy=("CN", None, DEFAULT_ALLOWED_TYPES))          # premium rate
@example(raw="4001234567", policy=("CN", None, DEFAULT_ALLOWED_TYPES))           # shared cost
@example(raw="+85251234567", policy=("CN", None, DEFAULT_ALLOWED_TYPES))         # out of region
@example(raw="１３９ ０００ ０１１１１", policy=("CN", None, DEFAULT_ALLOWED_TYPES))  # full-width, fine
def test_normaliser_accepts_only_valid_numbers_within_policy(
    raw: str, policy: tuple[str, frozenset[str] | None, frozenset[NumberType]]
) -> None:
    """Any text: InvalidNumber with a reason, or a valid E.164 (by phonenumbers) of an allowed region and type."""
    region, allowed_regions, allowed_types = policy
    try:
        number = normalise(raw, region, allowed_regions=allowed_regions, allowed_types=allowed_types)
    except InvalidNumber as exc:
        assert exc.reason
        return
    assert E164.fullmatch(number.e164), number
    parsed = phonenumbers.parse(number.e164, None)
    assert phonenumbers.is_valid_number(parsed)
    assert phonenumbers.region_code_for_number(parsed) == number.region
    assert number.region in (allowed_regions or {region})
    assert number.number_type in allowed_types


@FUZZ
@given(raw=anything, region=st.sampled_from(REGIONS))
def test_default_policy_never_admits_toll_fraud_types_or_foreign_numbers(raw: str, region: str) -> None:
    """With a campaign's defaults, nothing premium-rate, shared-cost or from another region gets through."""
    try:
        number = normalise(raw, region)
    except InvalidNumber:
        return
    assert number.number_type not in TOLL_FRAUD
    assert number.region == region


# No "*": redaction writes "***", which could otherwise spell a secret out of its surroundings.
secrets = st.text(alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="*"), min_size=4,
                  max_size=24).filter(lambda s: len(set(s)) > 1)


@FUZZ
@given(secret=secrets, before=st.text(max_size=30), after=st.text(max_size=30), times=st.integers(1, 3))
@example(secret="fake-Pa55word", before="redis://user:", after="@127.0.0.1:6379/0", times=1)
def test_registered_secret_never_survives_redaction(secret: str, before: str, after: str, times: int) -> None:
    """Whatever surrounds a registered secret (URLs, repeats, unicode), redact() leaves no copy of it."""
    known = secret in logs_module._secrets
    register_secret(secret)
    try:
        text = before + (secret + after) * times
        assert secret not in redact(text)
    finally:
        if not known:  # the set is process-wide: random secrets must not mask other tests' log lines
            logs_module._secrets.discard(secret)


@FUZZ
@given(user=st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True),
       password=st.from_regex(r"[A-Za-z0-9!$%^&*_=+-]{4,20}", fullmatch=True),
       scheme=st.sampled_from(["postgresql", "redis", "rediss", "amqp"]))
def test_url_passwords_are_masked_even_when_never_registered(user: str, password: str, scheme: str) -> None:
    """A connection URL printed by a library has its password masked without anyone registering it."""
    url = f"{scheme}://{user}:{password}@127.0.0.1:5432/db"
    cleaned = redact(f"cannot connect to {url}: refused")
    assert f":{password}@" not in cleaned and "***" in cleaned
