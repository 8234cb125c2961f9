"""Business time: deadlines counted in open hours across weekends, holidays, zones and DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from kefu.automation.calendar import Calendar, parse_weekly
from kefu.automation.config import build_calendar, public_holidays
from kefu.automation.models import BusinessHours
from kefu.core.errors import InvalidInput

NY = ZoneInfo("America/New_York")
SHANGHAI = ZoneInfo("Asia/Shanghai")
NINE_TO_SIX = parse_weekly({str(d): [["09:00", "18:00"]] for d in range(5)})
HOUR = 3600


def local(zone, *args):
    return datetime(*args, tzinfo=zone)


def test_within_open_hours_a_deadline_is_plain_addition():
    cal = Calendar(NY, NINE_TO_SIX)
    start = local(NY, 2025, 6, 10, 10, 0)  # a Tuesday
    assert cal.add(start, 2 * HOUR) == local(NY, 2025, 6, 10, 12, 0)


def test_time_past_closing_carries_to_the_next_morning():
    cal = Calendar(NY, NINE_TO_SIX)
    start = local(NY, 2025, 6, 10, 17, 0)
    assert cal.add(start, 2 * HOUR) == local(NY, 2025, 6, 11, 10, 0)


def test_a_friday_evening_message_is_due_on_monday():
    cal = Calendar(NY, NINE_TO_SIX)
    friday_evening = local(NY, 2025, 6, 13, 20, 0)
    assert cal.add(friday_evening, 30) == local(NY, 2025, 6, 16, 9, 0, 30)


def test_24_business_hours_span_almost_three_working_days():
    cal = Calendar(NY, NINE_TO_SIX)
    monday_morning = local(NY, 2025, 6, 9, 9, 0)
    assert cal.add(monday_morning, 24 * HOUR) == local(NY, 2025, 6, 11, 15, 0)


def test_public_holidays_of_the_store_country_are_closed():
    cal = Calendar(NY, NINE_TO_SIX, is_holiday=public_holidays("US").__contains__)
    # Friday 4 July 2025 is Independence Day: Thursday 17:00 + 2 h lands on Monday.
    start = local(NY, 2025, 7, 3, 17, 0)
    assert cal.add(start, 2 * HOUR) == local(NY, 2025, 7, 7, 10, 0)


def test_chinese_national_day_week_is_closed_in_shanghai():
    cn = public_holidays("CN")
    cal = Calendar(SHANGHAI, NINE_TO_SIX, is_holiday=cn.__contains__)
    start = local(SHANGHAI, 2025, 9, 30, 17, 0)
    due = cal.add(start, 2 * HOUR)
    assert due.astimezone(SHANGHAI).date() > date(2025, 10, 7)
    assert all(d in cn for d in (date(2025, 10, 1), date(2025, 10, 2), date(2025, 10, 3)))


def test_custom_closures_and_special_hours():
    black_friday = date(2025, 11, 28)
    cal = Calendar(
        NY,
        NINE_TO_SIX,
        special={black_friday: ()},
        annual={(11, 11): ((8 * 60, 22 * 60),)},  # 11.11: open 08:00-22:00 every year
    )
    assert cal.add(local(NY, 2025, 11, 27, 17, 0), 2 * HOUR) == local(NY, 2025, 12, 1, 10, 0)
    assert cal.is_open(local(NY, 2026, 11, 11, 21, 0))
    assert not cal.is_open(local(NY, 2026, 11, 12, 21, 0))


def test_deadlines_follow_the_store_time_zone():
    shanghai = Calendar(SHANGHAI, NINE_TO_SIX)
    # 02:00 UTC on a Tuesday is 10:00 in Shanghai: open.
    start = datetime(2025, 6, 10, 2, 0, tzinfo=UTC)
    assert shanghai.is_open(start)
    assert shanghai.add(start, HOUR) == datetime(2025, 6, 10, 3, 0, tzinfo=UTC)
    # The same instant is 22:00 Monday in New York: closed until 09:00 Tuesday.
    assert Calendar(NY, NINE_TO_SIX).add(start, HOUR) == local(NY, 2025, 6, 10, 10, 0)


def test_spring_forward_keeps_local_opening_times():
    cal = Calendar(NY, NINE_TO_SIX)
    # Friday 7 March 2025 17:00 EST; clocks go forward on Sunday 9 March.
    due = cal.add(local(NY, 2025, 3, 7, 17, 0), 2 * HOUR)
    assert due == local(NY, 2025, 3, 10, 10, 0)
    assert due.astimezone(NY).utcoffset() == timedelta(hours=-4)
    assert due.astimezone(UTC) == datetime(2025, 3, 10, 14, 0, tzinfo=UTC)


def test_a_day_with_the_clock_change_has_23_or_25_open_hours_on_a_24_7_schedule():
    all_day = parse_weekly({str(d): [["00:00", "24:00"]] for d in range(7)})
    cal = Calendar(NY, all_day)
    spring = cal.between(local(NY, 2025, 3, 9, 0, 0), local(NY, 2025, 3, 10, 0, 0))
    autumn = cal.between(local(NY, 2025, 11, 2, 0, 0), local(NY, 2025, 11, 3, 0, 0))
    assert (spring, autumn) == (23 * HOUR, 25 * HOUR)


def test_fall_back_is_counted_in_real_elapsed_time():
    cal = Calendar(NY, NINE_TO_SIX)
    # Friday 31 Oct 2025 17:00 EDT + 2 open hours = Monday 3 Nov 10:00 EST.
    due = cal.add(local(NY, 2025, 10, 31, 17, 0), 2 * HOUR)
    assert due.astimezone(UTC) == datetime(2025, 11, 3, 15, 0, tzinfo=UTC)


def test_subtract_and_between_are_inverse_to_add():
    cal = Calendar(NY, NINE_TO_SIX, is_holiday=public_holidays("US").__contains__)
    start = local(NY, 2025, 7, 2, 16, 30)
    due = cal.add(start, 10 * HOUR)
    assert cal.between(start, due) == 10 * HOUR
    assert cal.subtract(due, 10 * HOUR) == start
    assert cal.between(due, start) == -10 * HOUR


def test_always_open_is_a_plain_clock():
    cal = Calendar(always_open=True)
    start = datetime(2025, 6, 14, 23, 0, tzinfo=UTC)  # a Saturday night
    assert cal.add(start, 86400) == start + timedelta(days=1)


@pytest.mark.parametrize(
    "weekly",
    [
        {"0": [["18:00", "09:00"]]},
        {"0": [["09:00", "12:00"], ["11:00", "13:00"]]},
        {"7": [["09:00", "12:00"]]},
        {"0": [["25:00", "26:00"]]},
        {"0": "9-5"},
    ],
)
def test_malformed_hours_are_refused(weekly):
    with pytest.raises(InvalidInput):
        parse_weekly(weekly)


def test_hours_that_never_open_are_refused():
    with pytest.raises(InvalidInput):
        Calendar(NY, parse_weekly({}))


@pytest.mark.django_db
def test_a_business_hours_row_compiles_with_the_store_zone_and_country():
    from tests.factories import StoreFactory

    store = StoreFactory(timezone="Asia/Shanghai", country="CN")
    hours = BusinessHours.objects.create(
        store=store, name="Shanghai team", weekly={str(d): [["09:00", "18:00"]] for d in range(5)}
    )
    hours.holidays.create(date=date(2025, 11, 11), name="11.11", annual=True, hours=[])
    cal = build_calendar(hours, store)
    assert cal.tz == SHANGHAI
    assert not cal.is_open(local(SHANGHAI, 2026, 11, 11, 10, 0))  # annual closure
    assert not cal.is_open(local(SHANGHAI, 2025, 10, 1, 10, 0))  # National Day
    assert cal.is_open(local(SHANGHAI, 2025, 10, 9, 10, 0))
