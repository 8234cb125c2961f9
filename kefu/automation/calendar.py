"""Business time: when a team is open, and deadlines counted in open time.

A :class:`Calendar` is pure (no database): weekly intervals in a time zone, public holidays from
the ``holidays`` package, and special days (closures, special hours). Every computation walks
local dates and turns each open interval into aware datetimes through ``zoneinfo``, so weekends,
holidays and daylight-saving changes are counted as the team lives them: an interval of 09:00 to
18:00 on the day clocks go forward lasts nine hours all the same, one that spans the change
(00:00 to 24:00) lasts 23.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kefu.core.errors import InvalidInput

# Minutes since local midnight: (start, end), end <= 1440.
Interval = tuple[int, int]
DayHours = tuple[Interval, ...]

# How far a computation looks ahead before deciding a calendar is never open.
MAX_DAYS = 800


def parse_minutes(value: str, *, field_name: str = "weekly") -> int:
    """ "HH:MM" -> minutes since midnight ("24:00" is the end of the day)."""
    try:
        hours, minutes = (int(part) for part in str(value).split(":"))
    except ValueError:
        raise InvalidInput(f"{value!r} is not a time (HH:MM)", field=field_name) from None
    total = hours * 60 + minutes
    if not (0 <= minutes < 60 and 0 <= total <= 1440):
        raise InvalidInput(f"{value!r} is not a time between 00:00 and 24:00", field=field_name)
    return total


def parse_intervals(raw: object, *, field_name: str = "weekly") -> DayHours:
    """[["09:00", "12:00"], ["13:00", "18:00"]] -> sorted, non-overlapping minute intervals."""
    if raw in (None, ""):
        return ()
    if not isinstance(raw, list):
        raise InvalidInput("hours must be a list of [start, end] pairs", field=field_name)
    parsed = []
    for pair in raw:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise InvalidInput("hours must be a list of [start, end] pairs", field=field_name)
        start, end = (parse_minutes(v, field_name=field_name) for v in pair)
        if end <= start:
            raise InvalidInput(f"{pair[0]}-{pair[1]} ends before it starts", field=field_name)
        parsed.append((start, end))
    parsed.sort()
    for (_, end), (start, _) in pairwise(parsed):
        if start < end:
            raise InvalidInput("hours overlap", field=field_name)
    return tuple(parsed)


def parse_weekly(raw: Mapping[str, object]) -> tuple[DayHours, ...]:
    """{"0": [...], ..., "6": [...]} (Monday = 0) -> seven DayHours."""
    if not isinstance(raw, Mapping):
        raise InvalidInput("weekly must map weekday numbers 0-6 to hours", field="weekly")
    unknown = set(map(str, raw)) - {str(d) for d in range(7)}
    if unknown:
        raise InvalidInput(
            f"unknown weekdays {sorted(unknown)}; use 0 (Monday) to 6", field="weekly"
        )
    return tuple(parse_intervals(raw.get(str(day))) for day in range(7))


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {name!r}", field="timezone") from None


@dataclass(frozen=True)
class Calendar:
    """Open intervals in a time zone. ``always_open`` is the 24/7 clock."""

    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    weekly: tuple[DayHours, ...] = ((),) * 7
    special: Mapping[date, DayHours] = field(default_factory=dict)
    annual: Mapping[tuple[int, int], DayHours] = field(default_factory=dict)
    is_holiday: Callable[[date], bool] | None = None
    always_open: bool = False

    def __post_init__(self) -> None:
        if not self.always_open and not any(self.weekly) and not self.special:
            raise InvalidInput("business hours need at least one open interval", field="weekly")

    def day_hours(self, day: date) -> DayHours:
        if day in self.special:
            return self.special[day]
        if (day.month, day.day) in self.annual:
            return self.annual[(day.month, day.day)]
        if self.is_holiday is not None and self.is_holiday(day):
            return ()
        return self.weekly[day.weekday()]

    def _local(self, day: date, minutes: int) -> datetime:
        if minutes >= 1440:
            day, minutes = day + timedelta(days=1), minutes - 1440
        return datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=self.tz)

    def intervals(self, day: date) -> Iterator[tuple[datetime, datetime]]:
        """The open intervals of a local date, as UTC datetimes."""
        for start, end in self.day_hours(day):
            yield (
                self._local(day, start).astimezone(UTC),
                self._local(day, end).astimezone(UTC),
            )

    def _days_from(self, moment: datetime) -> Iterator[date]:
        # Start a day early: an interval of the previous local date may still be running.
        day = moment.astimezone(self.tz).date() - timedelta(days=1)
        for _ in range(MAX_DAYS):
            yield day
            day += timedelta(days=1)

    def is_open(self, moment: datetime) -> bool:
        if self.always_open:
            return True
        local_day = moment.astimezone(self.tz).date()
        for day in (local_day - timedelta(days=1), local_day):
            if any(s <= moment < e for s, e in self.intervals(day)):
                return True
        return False

    def add(self, start: datetime, seconds: float) -> datetime:
        """The moment ``seconds`` of open time after ``start``.

        With no time to add, the result is ``start`` when open, else the next opening.
        """
        if self.always_open:
            return start + timedelta(seconds=seconds)
        remaining = timedelta(seconds=max(seconds, 0))
        for day in self._days_from(start):
            for open_at, close_at in self.intervals(day):
                if close_at <= start:
                    continue
                begin = max(open_at, start)
                available = close_at - begin
                if remaining <= available:
                    return begin + remaining
                remaining -= available
        raise InvalidInput("these business hours are never open", field="weekly")

    def subtract(self, end: datetime, seconds: float) -> datetime:
        """The moment ``seconds`` of open time before ``end`` (for warnings ahead of a due)."""
        if self.always_open:
            return end - timedelta(seconds=seconds)
        remaining = timedelta(seconds=max(seconds, 0))
        local_day = end.astimezone(self.tz).date() + timedelta(days=1)
        for offset in range(MAX_DAYS):
            day = local_day - timedelta(days=offset)
            for open_at, close_at in reversed(list(self.intervals(day))):
                if open_at >= end:
                    continue
                finish = min(close_at, end)
                available = finish - open_at
                if remaining <= available:
                    return finish - remaining
                remaining -= available
        raise InvalidInput("these business hours are never open", field="weekly")

    def between(self, start: datetime, end: datetime) -> float:
        """Open seconds in [start, end); negative when ``end`` is before ``start``."""
        if end < start:
            return -self.between(end, start)
        if self.always_open:
            return (end - start).total_seconds()
        total = timedelta()
        for day in self._days_from(start):
            for open_at, close_at in self.intervals(day):
                if open_at >= end:
                    return total.total_seconds()
                overlap = min(close_at, end) - max(open_at, start)
                if overlap > timedelta():
                    total += overlap
        return total.total_seconds()


ALWAYS_OPEN = Calendar(always_open=True)
