"""Calling windows and recurrences: wall-clock rules in the campaign's zone, across midnight and DST."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.schedule import CallingWindow, last_recurrence, next_recurrence, parse_days, parse_windows


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# --------------------------------------------------------------------------------------------- parsing

def test_parse_windows_and_days() -> None:
    """Ranges become seconds after local midnight; '' is all day; days wrap and take full names."""
    assert parse_windows("09:00-12:00, 14:00-20:00") == ((32400, 43200), (50400, 72000))
    assert parse_windows("") == ((0, 86400),)
    assert parse_windows("22:00-02:00") == ((79200, 7200),)
    assert parse_windows("20:00-24:00") == ((72000, 86400),)
    assert parse_days("mon-fri") == frozenset(range(5))
    assert parse_days("sat-sun") == frozenset({5, 6})
    assert parse_days("mon,wed,sat") == frozenset({0, 2, 5})
    assert parse_days("fri-mon") == frozenset({4, 5, 6, 0})
    assert parse_days("Monday-Tuesday") == frozenset({0, 1})


@pytest.mark.parametrize(
    ("windows", "days", "tz", "names"),
    [
        ("09:00-25:00", "mon-sun", "Asia/Shanghai", "09:00-25:00"),
        ("9-12", "mon-sun", "Asia/Shanghai", "9-12"),
        ("09:00", "mon-sun", "Asia/Shanghai", "09:00"),
        ("09:00-12:00,10:60-11:00", "mon-sun", "Asia/Shanghai", "10:60-11:00"),
        ("09:00-09:00", "mon-sun", "Asia/Shanghai", "empty"),
        ("", "mon-fry", "Asia/Shanghai", "fry"),
        ("", "", "Asia/Shanghai", "days"),
        ("", "mon-sun", "Mars/Olympus", "Mars/Olympus"),
    ],
)
def test_parse_rejects_naming_the_bad_part(windows: str, days: str, tz: str, names: str) -> None:
    """A bad window, day or zone is refused with a message that quotes the part at fault."""
    with pytest.raises(ValueError, match=names):
        CallingWindow.parse(windows, days, tz)


# --------------------------------------------------------------------------------------------- is_open

def test_open_inside_local_hours_on_allowed_days() -> None:
    """Shanghai is UTC+8: 09:00-12:00 local is 01:00-04:00 UTC; Saturday is closed on mon-fri."""
    window = CallingWindow.parse("09:00-12:00,14:00-20:00", "mon-fri", "Asia/Shanghai")
    friday = utc(2024, 11, 1, 0, 0)  # Friday 08:00 local
    assert not window.is_open(friday)
    assert window.is_open(friday + timedelta(hours=1))
    assert window.is_open(friday + timedelta(hours=3, minutes=59))
    assert not window.is_open(friday + timedelta(hours=4))
    assert window.is_open(friday + timedelta(hours=6))
    assert not window.is_open(friday + timedelta(hours=12))
    assert not window.is_open(friday + timedelta(days=1, hours=1))  # Saturday 09:00


def test_window_across_midnight_belongs_to_the_day_it_starts() -> None:
    """22:00-02:00 on 'fri' runs Friday 22:00 to Saturday 02:00, and not Friday 00:00-02:00."""
    window = CallingWindow.parse("22:00-02:00", "fri", "Asia/Shanghai")
    assert not window.is_open(utc(2024, 10, 31, 17, 0))  # Friday 01:00 local: Thursday's window
    assert window.is_open(utc(2024, 11, 1, 14, 0))       # Friday 22:00
    assert window.is_open(utc(2024, 11, 1, 17, 59))      # Saturday 01:59
    assert not window.is_open(utc(2024, 11, 1, 18, 0))   # Saturday 02:00
    assert not window.is_open(utc(2024, 11, 2, 14, 0))   # Saturday 22:00


def test_start_and_end_bound_the_window() -> None:
    """start_at is inclusive and end_at exclusive, whatever the hours say."""
    window = CallingWindow.parse("", "mon-sun", "Asia/Shanghai")
    start, end = utc(2024, 11, 1, 0, 0), utc(2024, 11, 2, 0, 0)
    assert not window.is_open(start - timedelta(seconds=1), start, end)
    assert window.is_open(start, start, end)
    assert not window.is_open(end, start, end)
    assert window.next_open(start - timedelta(hours=5), start, end) == start
    assert window.next_open(end, start, end) is None


def test_spring_forward_keeps_local_hours() -> None:
    """New York 2024-03-10: 09:00 local is 14:00 UTC on Saturday and 13:00 UTC on Sunday."""
    window = CallingWindow.parse("09:00-17:00", "mon-sun", "America/New_York")
    assert window.next_open(utc(2024, 3, 9, 6)) == utc(2024, 3, 9, 14)
    assert window.next_open(utc(2024, 3, 10, 6)) == utc(2024, 3, 10, 13)
    assert not window.is_open(utc(2024, 3, 10, 21))
    assert window.is_open(utc(2024, 3, 9, 21, 59))


def test_window_starting_in_the_skipped_hour_opens_at_the_jump() -> None:
    """02:30 does not exist in New York on 2024-03-10: the window opens when clocks jump to 03:00 EDT."""
    window = CallingWindow.parse("02:30-04:00", "mon-sun", "America/New_York")
    assert window.next_open(utc(2024, 3, 10, 5)) == utc(2024, 3, 10, 7)
    assert window.is_open(utc(2024, 3, 10, 7))
    assert not window.is_open(utc(2024, 3, 10, 8))  # 04:00 EDT


def test_window_ending_in_the_skipped_hour_closes_at_the_jump() -> None:
    """Berlin 2024-03-31 02:00 CET jumps to 03:00 CEST (01:00 UTC): 22:00-02:30 ends at the jump."""
    window = CallingWindow.parse("22:00-02:30", "sat", "Europe/Berlin")
    assert window.is_open(utc(2024, 3, 30, 21, 0))       # Saturday 22:00 CET
    assert window.is_open(utc(2024, 3, 31, 0, 59, 59))   # Sunday 01:59:59 CET
    assert not window.is_open(utc(2024, 3, 31, 1, 0))    # Sunday 03:00 CEST


def test_repeated_hour_is_open_twice() -> None:
    """New York 2024-11-03 repeats 01:00-02:00: 01:00-01:30 is open at 05:00 UTC and again at 06:00 UTC."""
    window = CallingWindow.parse("01:00-01:30", "mon-sun", "America/New_York")
    assert window.is_open(utc(2024, 11, 3, 5, 15))       # 01:15 EDT
    assert not window.is_open(utc(2024, 11, 3, 5, 45))   # 01:45 EDT
    assert window.next_open(utc(2024, 11, 3, 5, 45)) == utc(2024, 11, 3, 6, 0)  # 01:00 EST
    assert window.is_open(utc(2024, 11, 3, 6, 15))


def test_fall_back_reopens_at_the_transition_not_at_a_range_start() -> None:
    """00:30-01:10 closes at 01:10 EDT and opens again when clocks fall back to 01:00 EST."""
    window = CallingWindow.parse("00:30-01:10", "mon-sun", "America/New_York")
    assert window.next_open(utc(2024, 11, 3, 5, 30)) == utc(2024, 11, 3, 6, 0)


def test_berlin_fall_back() -> None:
    """Berlin 2024-10-27 03:00 CEST falls back to 02:00 CET at 01:00 UTC; 08:00 local moves from 06 to 07 UTC."""
    window = CallingWindow.parse("08:00-20:00", "mon-sun", "Europe/Berlin")
    assert window.next_open(utc(2024, 10, 26, 0)) == utc(2024, 10, 26, 6)
    assert window.next_open(utc(2024, 10, 27, 0)) == utc(2024, 10, 27, 7)


def test_next_open_skips_closed_days() -> None:
    """Friday evening after hours on mon-fri: next open is Monday 09:00 local."""
    window = CallingWindow.parse("09:00-18:00", "mon-fri", "Asia/Shanghai")
    assert window.next_open(utc(2024, 11, 1, 11)) == utc(2024, 11, 4, 1)
    now = utc(2024, 11, 4, 2)
    assert window.next_open(now) == now


ZONES = ("Asia/Shanghai", "America/New_York", "Europe/Berlin")
DST_DAYS = (utc(2024, 3, 9), utc(2024, 3, 30), utc(2024, 10, 26), utc(2024, 11, 2), utc(2024, 6, 1))


@st.composite
def windows(draw: st.DrawFn) -> CallingWindow:
    ranges = draw(st.lists(st.tuples(st.integers(0, 95), st.integers(1, 96)), min_size=1, max_size=3))
    text = ",".join(f"{a // 4:02d}:{a % 4 * 15:02d}-{b // 4:02d}:{b % 4 * 15:02d}" for a, b in ranges if a != b % 96)
    days = draw(st.sets(st.sampled_from(("mon", "tue", "wed", "thu", "fri", "sat", "sun")), min_size=1))
    return CallingWindow.parse(text, ",".join(sorted(days)), draw(st.sampled_from(ZONES)))


@given(windows(), st.sampled_from(DST_DAYS), st.integers(0, 3 * 86400), st.randoms(use_true_random=False))
def test_next_open_is_open_and_nothing_earlier_is(
    window: CallingWindow, day: datetime, offset_s: int, rnd: random.Random
) -> None:
    """next_open(t) is open, not before t, and sampled instants between t and it are all closed."""
    now = day + timedelta(seconds=offset_s)
    found = window.next_open(now)
    assert found is not None and found >= now
    assert window.is_open(found)
    span = (found - now).total_seconds()
    for _ in range(100 if span > 0 else 0):
        assert not window.is_open(now + timedelta(seconds=rnd.uniform(0, span - 1e-3)))
    if found > now:
        assert not window.is_open(found - timedelta(seconds=1))


# --------------------------------------------------------------------------------------------- recurrences

def test_next_recurrence_in_the_campaign_zone() -> None:
    """'0 10 * * mon-fri' in Shanghai fires 02:00 UTC on weekdays; Friday's next is Monday."""
    assert next_recurrence("0 10 * * mon-fri", "Asia/Shanghai", utc(2024, 11, 1, 1)) == utc(2024, 11, 1, 2)
    assert next_recurrence("0 10 * * mon-fri", "Asia/Shanghai", utc(2024, 11, 1, 2)) == utc(2024, 11, 4, 2)


def test_recurrence_in_the_skipped_hour_fires_at_the_jump() -> None:
    """02:30 New York does not exist on 2024-03-10: it fires at 03:00 EDT (07:00 UTC), then 02:30 EDT."""
    fire = next_recurrence("30 2 * * *", "America/New_York", utc(2024, 3, 10, 0))
    assert fire == utc(2024, 3, 10, 7)
    assert next_recurrence("30 2 * * *", "America/New_York", fire) == utc(2024, 3, 11, 6, 30)


def test_recurrence_in_the_repeated_hour_fires_once() -> None:
    """01:30 happens twice in New York on 2024-11-03; the recurrence fires at the first only."""
    first = next_recurrence("30 1 * * *", "America/New_York", utc(2024, 11, 3, 0))
    assert first == utc(2024, 11, 3, 5, 30)
    assert next_recurrence("30 1 * * *", "America/New_York", first) == utc(2024, 11, 4, 6, 30)
    assert next_recurrence("30 1 * * *", "America/New_York", utc(2024, 11, 3, 6, 10)) == utc(2024, 11, 4, 6, 30)


def test_berlin_recurrence_across_spring_forward() -> None:
    """08:00 Berlin is 07:00 UTC in winter and 06:00 UTC from 2024-03-31."""
    assert next_recurrence("0 8 * * *", "Europe/Berlin", utc(2024, 3, 30, 8)) == utc(2024, 3, 31, 6)


def test_last_recurrence() -> None:
    """The latest firing at or before the instant: Saturday looks back to Friday 10:00."""
    assert last_recurrence("0 10 * * mon-fri", "Asia/Shanghai", utc(2024, 11, 2, 4)) == utc(2024, 11, 1, 2)
    assert last_recurrence("0 10 * * *", "Asia/Shanghai", utc(2024, 11, 1, 2)) == utc(2024, 11, 1, 2)
    assert last_recurrence("30 1 * * *", "America/New_York", utc(2024, 11, 3, 6, 40)) == utc(2024, 11, 3, 5, 30)


def test_bad_cron_is_refused() -> None:
    """Text that is not a cron expression is refused with an example of one."""
    with pytest.raises(ValueError, match="cron"):
        next_recurrence("every day", "Asia/Shanghai", utc(2024, 11, 1))
