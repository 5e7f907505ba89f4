"""The create-campaign form: the CLI's parsers and the one checker, each error beside the field it is about."""

from __future__ import annotations

from datetime import timedelta

import pytest

from producer.campaigns import CampaignSpec, check_spec
from producer.web import forms
from shared.outcomes import Outcome


def _form(**changes: str) -> dict[str, str]:
    values = forms.defaults()
    values.update(name="spring", trunk="default")
    values.update({k.replace("_", "-"): v for k, v in changes.items()})
    return values


def test_good_form_builds_the_spec_the_cli_would() -> None:
    """Same options as `dialer campaign create spring --trunk default --window ... --retry-delay busy=10m`."""
    result = forms.read_form(_form(window="09:00-12:00,14:00-20:00", days="mon-fri", retry_delay="busy=10m",
                                   ring_timeout="30s", hold="5s", allow_regions="CN,HK", cps="2.5"))
    assert result.errors == {}
    assert result.spec is not None
    assert result.spec == CampaignSpec(
        name="spring", trunk="default", windows="09:00-12:00,14:00-20:00", days="mon-fri",
        retry_delays={Outcome.BUSY: timedelta(minutes=10)}, ring_timeout_s=30.0, hold_s=5.0,
        allowed_regions=("CN", "HK"), cps=2.5, allowed_types=("mobile", "fixed_line"),
    )
    check_spec(result.spec)


@pytest.mark.parametrize(("field", "value", "says"), [
    ("name", "", "name"),
    ("trunk", "no spaces allowed", "trunk"),
    ("region", "XX", "region"),
    ("tz", "Mars/Olympus", "time zone"),
    ("window", "25:00-26:00", "25:00"),
    ("days", "mon-funday", "funday"),
    ("start-at", "tomorrow", "ISO 8601"),
    ("recur", "every day", "cron"),
    ("max-attempts", "0", "max-attempts"),
    ("max-attempts", "three", "whole number"),
    ("retry-delay", "answered=5m", "never retried"),
    ("retry-delay", "busy", "outcome=duration"),
    ("max-concurrent", "-1", "max-concurrent"),
    ("cps", "fast", "not a number"),
    ("ring-timeout", "forever", "duration"),
    ("hold", "99999s", "hold"),
    ("allow-regions", "CN,ZZ", "ZZ"),
    ("allow-types", "mobile,satellite", "satellite"),
])
def test_each_bad_field_gets_its_own_error(field: str, value: str, says: str) -> None:
    """One bad field: the error is beside it and no other field, and nothing is built."""
    result = forms.read_form({**_form(), field: value})
    assert result.spec is None
    assert set(result.errors) == {field}
    assert says in result.errors[field]


def test_every_bad_field_is_reported_at_once() -> None:
    """Three bad fields, three errors: the operator fixes them in one go, not one submit per field."""
    result = forms.read_form(_form(window="9-5", cps="0", tz="Nowhere/City"))
    assert set(result.errors) == {"window", "cps", "tz"}


def test_start_and_end_are_checked_together_and_in_the_campaign_zone() -> None:
    """End before start is an error on end-at; a time without offset is in the form's time zone."""
    result = forms.read_form(_form(start_at="2030-06-02T09:00", end_at="2030-06-01T09:00"))
    assert set(result.errors) == {"end-at"}
    good = forms.read_form(_form(tz="Europe/Berlin", start_at="2030-06-01T09:00"))
    assert good.spec is not None and good.spec.start_at is not None
    assert good.spec.start_at.utcoffset() == timedelta(hours=2)
