"""The last check before an INVITE: every verdict, in the order the rules are applied, without I/O.

The toll-fraud guard is pinned here too, not only in tests/faults: a number
that reached dial_jobs behind the upload's back (premium-rate, shared-cost, out
of the campaign's regions) is refused before any INVITE.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from worker.precheck import PAUSED_RECHECK, PreDialFacts, Verdict, check_before_dial

# Tuesday 2026-03-03 10:00 in Shanghai (02:00 UTC): inside a 09:00-18:00 Mon-Fri window.
NOW = datetime(2026, 3, 3, 2, 0, tzinfo=UTC)
MOBILE = "+8613900000001"  # fictional
FACTS = PreDialFacts(
    campaign_state="running", on_dnc=False, e164=MOBILE, region="CN", allowed_regions=(),
    allowed_types=("mobile", "fixed_line", "fixed_line_or_mobile"), windows="09:00-18:00", days="mon-fri",
    tz="Asia/Shanghai", start_at=None, end_at=None,
)


def example(region: str, kind: int) -> str:
    number = phonenumbers.example_number_for_type(region, kind)
    assert number is not None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def test_running_campaign_in_its_window_dials_the_normalised_number() -> None:
    """All clear: DIAL, with the parsed number handed on and no retry time."""
    result = check_before_dial(FACTS, NOW)
    assert result.verdict is Verdict.DIAL
    assert result.number is not None and result.number.e164 == MOBILE
    assert result.retry_at is None


def test_cancelled_campaign_cancels_even_a_dnc_number() -> None:
    """Cancel comes first: a cancelled campaign's job is cancelled, whatever else holds."""
    result = check_before_dial(replace(FACTS, campaign_state="cancelled", on_dnc=True), NOW)
    assert (result.verdict, result.reason) == (Verdict.CANCEL, "campaign cancelled")


def test_dnc_number_is_skipped_even_when_the_campaign_is_paused() -> None:
    """DNC wins over pause: the job is settled as skipped now, not looked at again later."""
    result = check_before_dial(replace(FACTS, on_dnc=True, campaign_state="paused"), NOW)
    assert result.verdict is Verdict.SKIP_DNC


@pytest.mark.parametrize("state", ["paused", "draft", "finished"])
def test_campaign_not_running_postpones_for_a_minute(state: str) -> None:
    """Not running (and not cancelled): given back for PAUSED_RECHECK, with the state in the reason."""
    result = check_before_dial(replace(FACTS, campaign_state=state), NOW)
    assert result.verdict is Verdict.POSTPONE
    assert result.retry_at == NOW + PAUSED_RECHECK
    assert state in result.reason


@pytest.mark.parametrize(
    ("number", "region"),
    [
        (example("CN", PhoneNumberType.PREMIUM_RATE), "CN"),
        (example("CN", PhoneNumberType.SHARED_COST), "CN"),
        (example("GB", PhoneNumberType.PREMIUM_RATE), "CN"),
        (example("HK", PhoneNumberType.MOBILE), "CN"),
        (example("US", PhoneNumberType.FIXED_LINE_OR_MOBILE), "CN"),
    ],
    ids=["cn-premium", "cn-shared-cost", "gb-premium", "hk-mobile", "us-number"],
)
def test_toll_fraud_guard_refuses_numbers_outside_the_campaigns_policy(number: str, region: str) -> None:
    """A forbidden number in dial_jobs is refused before any INVITE, even in the window of a running campaign."""
    result = check_before_dial(replace(FACTS, e164=number, region=region), NOW)
    assert result.verdict is Verdict.REFUSE_NUMBER
    assert result.number is None
    assert result.reason


def test_allowed_regions_widen_the_campaign_region() -> None:
    """A HK mobile is dialled once the campaign allows HK; the regions list is what is checked, not the region."""
    hk = example("HK", PhoneNumberType.MOBILE)
    result = check_before_dial(replace(FACTS, e164=hk, allowed_regions=("CN", "HK")), NOW)
    assert result.verdict is Verdict.DIAL


def test_allowed_types_are_enforced_not_only_the_default() -> None:
    """A campaign allowing fixed lines only refuses a mobile number."""
    result = check_before_dial(replace(FACTS, allowed_types=("fixed_line",)), NOW)
    assert result.verdict is Verdict.REFUSE_NUMBER


def test_outside_the_window_postpones_to_the_next_opening() -> None:
    """At 20:00 Shanghai time the job waits for 09:00 the next morning."""
    evening = NOW + timedelta(hours=10)
    result = check_before_dial(FACTS, evening)
    assert result.verdict is Verdict.POSTPONE
    assert result.retry_at == datetime(2026, 3, 4, 1, 0, tzinfo=UTC)
    assert result.reason == "outside the calling window"


def test_calling_period_over_cancels() -> None:
    """end_at passed and no window ahead: CANCEL, the job will never be dialled."""
    result = check_before_dial(replace(FACTS, end_at=NOW - timedelta(days=1)), NOW)
    assert (result.verdict, result.reason) == (Verdict.CANCEL, "campaign's calling period is over")


def test_bad_number_is_refused_before_the_window_is_looked_at() -> None:
    """A forbidden number outside the window is refused, not postponed to be refused later."""
    premium = example("CN", PhoneNumberType.PREMIUM_RATE)
    result = check_before_dial(replace(FACTS, e164=premium), NOW + timedelta(hours=10))
    assert result.verdict is Verdict.REFUSE_NUMBER


def test_dnc_reason_is_said() -> None:
    """The skip says why, for the job's record."""
    assert check_before_dial(replace(FACTS, on_dnc=True), NOW).reason == "number is on the do-not-call list"


def test_campaign_region_is_the_default_allowed_region() -> None:
    """A Hong Kong campaign (no other regions listed) dials a Hong Kong number."""
    hk = example("HK", PhoneNumberType.MOBILE)
    result = check_before_dial(replace(FACTS, e164=hk, region="HK"), NOW)
    assert result.verdict is Verdict.DIAL


def test_window_is_read_in_the_campaigns_time_zone() -> None:
    """09:00-18:00 in UTC is closed at 02:00 UTC (10:00 in Shanghai) and reopens at 09:00 UTC."""
    result = check_before_dial(replace(FACTS, tz="UTC"), NOW)
    assert (result.verdict, result.retry_at) == (Verdict.POSTPONE, datetime(2026, 3, 3, 9, 0, tzinfo=UTC))


def test_campaign_not_started_yet_waits_for_its_start() -> None:
    """Inside the window but before start_at: postponed to start_at, not dialled now."""
    start = NOW + timedelta(hours=1)
    result = check_before_dial(replace(FACTS, start_at=start), NOW)
    assert (result.verdict, result.retry_at) == (Verdict.POSTPONE, start)
