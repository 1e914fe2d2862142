"""Which period is due, table-driven: time zones, send hours, DST nights, catch-up after downtime."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from aggregator.digest.schedule import due_period, next_send, retry_delay, send_instant, zone
from aggregator.errors import InvalidInputError


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("tz", "hour", "now", "last", "force", "expected"), [
    ("UTC", 8, "2025-03-10T07:59", None, False, None),
    ("UTC", 8, "2025-03-10T08:00", None, False, "2025-03-10"),
    ("UTC", 8, "2025-03-10T23:59", "2025-03-10", False, None),  # already sent today
    ("UTC", 8, "2025-03-11T08:01", "2025-03-10", False, "2025-03-11"),
    ("UTC", 8, "2025-03-12T20:30", "2025-03-10", False, "2025-03-12"),  # down a day and a half: one, late
    ("UTC", 8, "2025-03-12T07:00", "2025-03-10", False, None),  # missed days are not sent one by one
    ("UTC", 8, "2025-03-10T01:00", None, True, "2025-03-10"),  # --now ignores the hour
    ("UTC", 8, "2025-03-10T01:00", "2025-03-10", True, None),  # ... but never repeats a day
    ("Asia/Almaty", 9, "2025-03-10T03:59", None, False, None),  # UTC+5
    ("Asia/Almaty", 9, "2025-03-10T04:00", None, False, "2025-03-10"),
    ("Asia/Almaty", 0, "2025-03-10T19:00", "2025-03-10", False, "2025-03-11"),  # local date is tomorrow
    ("America/Los_Angeles", 8, "2025-03-10T06:00", None, False, "2025-03-09"),  # still the 9th there, 23:00
    ("America/Los_Angeles", 8, "2025-03-10T15:00", "2025-03-09", False, "2025-03-10"),  # PDT: 08:00 = 15:00Z
    ("America/New_York", 2, "2025-03-09T06:59", None, False, None),  # 01:59 EST
    ("America/New_York", 2, "2025-03-09T07:00", None, False, "2025-03-09"),  # 02:00 never comes: 03:00 EDT
    ("America/New_York", 1, "2025-11-02T04:59", None, False, None),
    ("America/New_York", 1, "2025-11-02T05:00", None, False, "2025-11-02"),  # first 01:00 (EDT)
    ("America/New_York", 1, "2025-11-02T06:00", "2025-11-02", False, None),  # second 01:00 (EST): no repeat
    ("Australia/Lord_Howe", 2, "2025-10-04T15:30", None, False, "2025-10-05"),  # a half-hour DST jump
])
def test_due_period(tz: str, hour: int, now: str, last: str | None, force: bool, expected: str | None) -> None:
    got = due_period(zone(tz), hour, utc(now), date.fromisoformat(last) if last else None, force=force)
    assert got == (date.fromisoformat(expected) if expected else None)


@pytest.mark.parametrize(("tz", "hour", "day"), [
    ("America/New_York", 2, "2025-03-09"), ("America/New_York", 1, "2025-11-02"), ("Europe/Berlin", 2, "2025-03-30"),
    ("Europe/Berlin", 2, "2025-10-26"), ("Europe/London", 1, "2025-03-30"), ("Asia/Tashkent", 8, "2025-03-30"),
])
def test_every_minute_across_a_dst_day_one_period_each_date(tz: str, hour: int, day: str) -> None:
    start = utc(f"{day}T00:00") - timedelta(hours=14)
    last: date | None = None
    sent: list[date] = []
    for minute in range(0, 52 * 60, 5):
        period = due_period(zone(tz), hour, start + timedelta(minutes=minute), last)
        if period:
            sent.append(period)
            last = period
    assert len(sent) == len(set(sent)) and date.fromisoformat(day) in sent


def test_send_instants_on_dst_days() -> None:
    assert send_instant(date(2025, 3, 9), zone("America/New_York"), 2) == utc("2025-03-09T07:00")
    assert send_instant(date(2025, 11, 2), zone("America/New_York"), 1) == utc("2025-11-02T05:00")
    assert send_instant(date(2025, 3, 30), zone("Europe/Berlin"), 2) == utc("2025-03-30T01:00")


def test_next_send() -> None:
    assert next_send(zone("UTC"), 8, utc("2025-03-10T09:00"), date(2025, 3, 10)) == utc("2025-03-11T08:00")
    assert next_send(zone("UTC"), 8, utc("2025-03-10T07:00"), date(2025, 3, 9)) == utc("2025-03-10T08:00")


@pytest.mark.parametrize(("attempts", "seconds"), [(1, 60), (2, 120), (3, 240), (7, 3600), (30, 3600)])
def test_retry_delay_doubles_up_to_an_hour(attempts: int, seconds: int) -> None:
    assert retry_delay(attempts, 60) == timedelta(seconds=seconds)


@pytest.mark.parametrize("name", ["", "Mars/Olympus", "../etc/localtime", "/etc/passwd", "utc\x00", "Europe"])
def test_unknown_zones_are_refused(name: str) -> None:
    with pytest.raises(InvalidInputError):
        zone(name)
