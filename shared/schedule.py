"""When a campaign may call: calling windows and recurrences, in the campaign's own time zone.

Pure (zoneinfo and croniter only). A window is a set of *wall-clock* ranges on
allowed weekdays: "09:00-20:00" means what a clock on the lead's wall reads, so
across a DST change the window keeps its local hours and its length in real
time changes by the shift. The rules, pinned by tests/unit/test_schedule.py:

- ``""`` is all day; ``"22:00-02:00"`` crosses midnight and belongs to the day
  it starts (on "mon-fri" it runs Friday 22:00 to Saturday 02:00, not Monday
  00:00-02:00); ``"24:00"`` is allowed as an end.
- A range start that does not exist locally (spring forward skips it) opens at
  the instant the clock jumps past it; a start that exists twice (fall back)
  opens at its first occurrence, and the window is open whenever the wall clock
  is inside a range, so a repeated hour is a repeated hour of calling.
- A recurrence fires once per matching wall-clock time: a skipped local time
  fires when the clock jumps past it, a repeated one fires on its first
  occurrence only (croniter with an aware start would fire it twice).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

DAY_S = 86_400
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_ALL_DAYS = frozenset(range(7))


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"time zone {tz!r} is unknown (examples: Asia/Shanghai, Europe/Berlin)") from None


def _parse_clock(text: str, *, is_end: bool) -> int:
    hours, sep, minutes = text.strip().partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or len(minutes) != 2 or len(hours) > 2:
        raise ValueError(f"{text.strip()!r} is not a time of day (expected HH:MM)")
    seconds = int(hours) * 3600 + int(minutes) * 60
    limit = DAY_S if is_end else DAY_S - 60
    if int(minutes) > 59 or seconds > limit:
        raise ValueError(f"{text.strip()!r} is not a time of day (00:00 to {'24:00' if is_end else '23:59'})")
    return seconds


def parse_windows(windows: str) -> tuple[tuple[int, int], ...]:
    """'09:00-12:00,22:00-02:00' -> ((32400, 43200), (79200, 7200)): seconds after local midnight."""
    if not windows.strip():
        return ((0, DAY_S),)
    ranges = []
    for part in windows.split(","):
        start_text, sep, end_text = part.partition("-")
        if not sep:
            raise ValueError(f"window {part.strip()!r}: expected HH:MM-HH:MM, e.g. 09:00-12:00")
        try:
            start, end = _parse_clock(start_text, is_end=False), _parse_clock(end_text, is_end=True)
        except ValueError as exc:
            raise ValueError(f"window {part.strip()!r}: {exc}") from None
        if start == end % DAY_S and end != DAY_S:
            raise ValueError(f"window {part.strip()!r} is empty; use 00:00-24:00 or '' for all day")
        ranges.append((start, end))
    return tuple(ranges)


def parse_days(days: str) -> frozenset[int]:
    """'mon-fri', 'mon,wed,sat', 'fri-mon' (wraps), full names too -> weekday numbers, Monday = 0."""
    found: set[int] = set()
    for part in days.lower().split(","):
        first, sep, last = (p.strip() for p in part.partition("-"))
        numbers = []
        for name in (first, last) if sep else (first,):
            if name in DAY_NAMES:
                numbers.append(DAY_NAMES.index(name))
            elif name in _FULL_DAY_NAMES:
                numbers.append(_FULL_DAY_NAMES.index(name))
            else:
                raise ValueError(f"days {part.strip()!r}: {name!r} is not one of {', '.join(DAY_NAMES)}")
        lo, hi = numbers[0], numbers[-1]
        found.update((lo + i) % 7 for i in range((hi - lo) % 7 + 1))
    return frozenset(found)


@dataclass(frozen=True, slots=True)
class CallingWindow:
    """Ranges of local wall-clock time (seconds after midnight), allowed weekdays, a time zone."""

    ranges: tuple[tuple[int, int], ...] = ((0, DAY_S),)
    days: frozenset[int] = _ALL_DAYS
    tz: str = "Asia/Shanghai"

    @classmethod
    def parse(cls, windows: str, days: str = "mon-sun", tz: str = "Asia/Shanghai") -> CallingWindow:
        """Build from the campaign's columns; ValueError names the bad part."""
        _zone(tz)
        return cls(parse_windows(windows), parse_days(days), tz)

    @property
    def zone(self) -> ZoneInfo:
        return _zone(self.tz)

    def is_open(self, now: datetime, start_at: datetime | None = None, end_at: datetime | None = None) -> bool:
        """Whether calling is allowed at ``now`` (tz-aware); start_at is inclusive, end_at exclusive."""
        if (start_at is not None and now < start_at) or (end_at is not None and now >= end_at):
            return False
        local = now.astimezone(self.zone)
        clock = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        today, yesterday = local.weekday(), (local.weekday() - 1) % 7
        for start, end in self.ranges:
            if start < end:
                if today in self.days and start <= clock < end:
                    return True
            elif (today in self.days and clock >= start) or (yesterday in self.days and clock < end):
                return True
        return False

    def next_open(
        self, now: datetime, start_at: datetime | None = None, end_at: datetime | None = None
    ) -> datetime | None:
        """The first instant at or after ``now`` when the window is open; None if never again.

        A window opens only where the wall clock reaches a range start or jumps
        (a DST transition), so those instants over the coming days are the only
        candidates to check.
        """
        t = max(now, start_at) if start_at is not None else now
        if end_at is not None and t >= end_at:
            return None
        if self.is_open(t, start_at, end_at):
            return t
        zone = self.zone
        first_day = t.astimezone(zone).date() - timedelta(days=1)
        candidates: list[datetime] = []
        for offset in range(16):
            day = first_day + timedelta(days=offset)
            if day.weekday() in self.days:
                for start, _end in self.ranges:
                    wall = datetime.combine(day, time()) + timedelta(seconds=start)
                    candidates.append(wall_to_utc(wall, zone))
                    candidates.append(wall.replace(tzinfo=zone, fold=1).astimezone(UTC))
            transition = _transition_on(day, zone)
            if transition is not None:
                candidates.append(transition)
        for candidate in sorted(c for c in candidates if c > t):
            if end_at is not None and candidate >= end_at:
                return None
            if self.is_open(candidate, start_at, end_at):
                return candidate
        return None


def _utc_offset_s(instant: datetime, zone: ZoneInfo) -> float:
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None
    return offset.total_seconds()


def _transition_on(day: date, zone: ZoneInfo) -> datetime | None:
    """The instant the zone's UTC offset changes during local ``day``, if it does."""
    lo = wall_to_utc(datetime.combine(day, time()), zone)
    hi = wall_to_utc(datetime.combine(day + timedelta(days=1), time()), zone)
    before = _utc_offset_s(lo, zone)
    if _utc_offset_s(hi, zone) == before:
        return None
    return _first_second(lo, hi, lambda instant: _utc_offset_s(instant, zone) != before)


def _first_second(lo: datetime, hi: datetime, reached: Callable[[datetime], bool]) -> datetime:
    """The first whole UTC second in (lo, hi] where ``reached`` holds; it must be monotonic there.

    tzdata transitions fall on whole seconds, so bisecting on integers is exact.
    """
    low, high = math.floor(lo.timestamp()), math.ceil(hi.timestamp())
    while high - low > 1:
        mid = (low + high) // 2
        if reached(datetime.fromtimestamp(mid, UTC)):
            high = mid
        else:
            low = mid
    return datetime.fromtimestamp(high, UTC)


def wall_to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """The first instant at which a clock in ``zone`` reads ``wall`` (naive) or later.

    Existing times map to their first occurrence; a time skipped by spring
    forward maps to the instant of the jump.
    """
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        other = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
        return min(first, other)
    lo, hi = sorted((first, wall.replace(tzinfo=zone, fold=1).astimezone(UTC)))
    return _first_second(lo, hi, lambda instant: instant.astimezone(zone).replace(tzinfo=None) >= wall)


def next_recurrence(cron: str, tz: str, after: datetime) -> datetime:
    """The first firing of ``cron`` (in zone ``tz``) strictly after ``after``, in UTC."""
    zone = _zone(tz)
    if not croniter.is_valid(cron):
        raise ValueError(f"{cron!r} is not a cron expression (example: '0 10 * * mon-fri')")
    local = after.astimezone(zone).replace(tzinfo=None) - timedelta(hours=3)
    it = croniter(cron, local)
    while True:
        fire = wall_to_utc(it.get_next(datetime), zone)
        if fire > after:
            return fire


def last_recurrence(cron: str, tz: str, at: datetime) -> datetime | None:
    """The latest firing of ``cron`` at or before ``at``, in UTC (None if none in the past year)."""
    zone = _zone(tz)
    if not croniter.is_valid(cron):
        raise ValueError(f"{cron!r} is not a cron expression (example: '0 10 * * mon-fri')")
    local = at.astimezone(zone).replace(tzinfo=None) + timedelta(hours=3, seconds=1)
    it = croniter(cron, local)
    floor = at - timedelta(days=366)
    while True:
        fire = wall_to_utc(it.get_prev(datetime), zone)
        if fire <= at:
            return fire
        if fire < floor:
            return None
