"""Calling windows and recurrences at their edges, from the survivors of ``scripts/mutation``.

Exact messages for each malformed clock, the first and last valid minutes,
sub-second boundaries, the overnight window after a Sunday, and searches
that start in the future.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from shared.schedule import DAY_S, CallingWindow, last_recurrence, parse_days, parse_windows, wall_to_utc

AT = datetime(2026, 3, 3, 10, 30, tzinfo=UTC)  # a Tuesday


@pytest.mark.parametrize(("windows", "message"), [
    ("09:00-12:00-13:00", "window '09:00-12:00-13:00': '12:00-13:00' is not a time of day (expected HH:MM)"),
    ("09-12:00", "window '09-12:00': '09' is not a time of day (expected HH:MM)"),
    ("ab:00-12:00", "window 'ab:00-12:00': 'ab:00' is not a time of day (expected HH:MM)"),
    ("09:ab-12:00", "window '09:ab-12:00': '09:ab' is not a time of day (expected HH:MM)"),
    ("09:0-12:00", "window '09:0-12:00': '09:0' is not a time of day (expected HH:MM)"),
    ("123:00-12:00", "window '123:00-12:00': '123:00' is not a time of day (expected HH:MM)"),
    ("24:00-01:00", "window '24:00-01:00': '24:00' is not a time of day (00:00 to 23:59)"),
    ("09:60-10:00", "window '09:60-10:00': '09:60' is not a time of day (00:00 to 23:59)"),
    ("09:00-24:01", "window '09:00-24:01': '24:01' is not a time of day (00:00 to 24:00)"),
])
def test_malformed_windows_name_the_part_and_the_rule(windows: str, message: str) -> None:
    """Each malformed clock is reported with the part it came from and what a clock must look like."""
    with pytest.raises(ValueError) as caught:
        parse_windows(windows)
    assert str(caught.value) == message


def test_clock_edges_parse_to_seconds() -> None:
    """23:59 may start a window, 24:00 end one, minute 59 exists, and minutes count 60 seconds."""
    assert parse_windows("23:59-24:00") == ((DAY_S - 60, DAY_S),)
    assert parse_windows("09:59-10:00") == ((35_940, 36_000),)
    assert parse_windows("9:30-10:00") == ((34_200, 36_000),)


def test_unknown_day_lists_the_day_names() -> None:
    """A misspelt day names itself, its part, and the accepted short names."""
    with pytest.raises(ValueError) as caught:
        parse_days("mon-funday")
    assert str(caught.value) == "days 'mon-funday': 'funday' is not one of mon, tue, wed, thu, fri, sat, sun"


def test_window_defaults_to_every_day_in_shanghai() -> None:
    """Only the hours given: every weekday, China's time zone."""
    window = CallingWindow.parse("09:00-10:00")
    assert (window.days, window.tz) == (frozenset(range(7)), "Asia/Shanghai")


def test_open_and_close_to_the_second() -> None:
    """09:00-09:01 is open at 09:00:00.5 and 09:00:59, closed at 09:01:00."""
    window = CallingWindow.parse("09:00-09:01", tz="UTC")
    day = AT.replace(hour=9, minute=0)
    assert window.is_open(day.replace(microsecond=500_000))
    assert window.is_open(day.replace(second=59))
    assert not window.is_open(day.replace(minute=1))


def test_overnight_window_from_sunday_is_open_early_monday() -> None:
    """A Sunday-only 22:00-02:00 window still covers Monday 01:00 (yesterday wraps to Sunday)."""
    window = CallingWindow.parse("22:00-02:00", "sun", "UTC")
    assert window.is_open(datetime(2026, 3, 2, 1, 0, tzinfo=UTC))  # Monday
    assert not window.is_open(datetime(2026, 3, 3, 1, 0, tzinfo=UTC))  # Tuesday


def test_next_open_with_an_end_in_the_future_is_todays_start() -> None:
    """Before today's window, with the campaign ending next week: it opens at today's start."""
    window = CallingWindow.parse("09:00-10:00", tz="UTC")
    assert window.next_open(AT.replace(hour=8), None, datetime(2026, 3, 10, tzinfo=UTC)) == AT.replace(hour=9,
                                                                                                       minute=0)


def test_last_recurrence_looks_back_from_the_given_instant() -> None:
    """Hourly: 10:00 for 10:30, in 2026 as in 2030 (the search starts at the instant, not at now)."""
    assert last_recurrence("0 * * * *", "UTC", AT) == AT.replace(minute=0)
    future = AT.replace(year=2030)
    assert last_recurrence("0 * * * *", "UTC", future) == future.replace(minute=0)
    with pytest.raises(ValueError) as caught:
        last_recurrence("bad cron", "UTC", AT)
    assert str(caught.value) == "'bad cron' is not a cron expression (example: '0 10 * * mon-fri')"


def test_window_opens_again_at_the_second_occurrence_of_a_repeated_hour() -> None:
    """Berlin's autumn fall-back repeats 02:00-03:00: a 02:30 window opens a second time, at 01:30 UTC."""
    window = CallingWindow.parse("02:30-02:45", tz="Europe/Berlin")
    assert window.next_open(datetime(2026, 10, 25, 0, 50, tzinfo=UTC)) == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)


def test_window_starting_in_the_skipped_hour_opens_at_the_jump_to_the_second() -> None:
    """Berlin's spring-forward skips 02:00-03:00: a window from 02:00 opens at 01:00:00 UTC exactly."""
    window = CallingWindow.parse("02:00-04:00", tz="Europe/Berlin")
    assert window.next_open(datetime(2026, 3, 29, 0, 30, tzinfo=UTC)) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


def test_wall_time_in_a_gap_or_fold_maps_to_its_first_instant() -> None:
    """A skipped 02:30 maps to the jump (01:00 UTC); a repeated 02:30 to its first occurrence (00:30 UTC)."""
    berlin = ZoneInfo("Europe/Berlin")
    assert wall_to_utc(datetime(2026, 3, 29, 2, 30), berlin) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert wall_to_utc(datetime(2026, 10, 25, 2, 30), berlin) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


def test_dst_changes_are_found_to_the_second() -> None:
    """The clock change of a day is its exact instant (candidates for the next opening are built on it)."""
    from shared.schedule import _transition_on

    berlin = ZoneInfo("Europe/Berlin")
    assert _transition_on(datetime(2026, 10, 25).date(), berlin) == datetime(2026, 10, 25, 1, 0, tzinfo=UTC)
    assert _transition_on(datetime(2026, 3, 29).date(), berlin) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert _transition_on(datetime(2026, 3, 30).date(), berlin) is None
