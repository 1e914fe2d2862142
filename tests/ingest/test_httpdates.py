"""Retry-After, Cache-Control and Expires parsing: malformed input must yield None, never raise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aggregator.ingest.httpdates import (
    MAX_DELAY,
    freshness_seconds,
    parse_http_date,
    parse_max_age,
    parse_retry_after,
)

NOW = datetime(2025, 1, 6, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", NOW + timedelta(seconds=120)),
        (" 0 ", NOW),
        ("Mon, 06 Jan 2025 12:30:00 GMT", NOW + timedelta(minutes=30)),  # IMF-fixdate
        ("Monday, 06-Jan-25 12:30:00 GMT", NOW + timedelta(minutes=30)),  # RFC 850
        ("Mon Jan  6 12:30:00 2025", NOW + timedelta(minutes=30)),  # asctime, no zone: GMT
        ("Mon, 06 Jan 2025 11:00:00 GMT", NOW),  # in the past: retry now
        ("99999999999999999999999", NOW + MAX_DELAY),  # absurd: capped, no overflow
        ("9" * 5000, NOW + MAX_DELAY),  # longer than int() accepts
        ("Fri, 06 Jan 2040 12:00:00 GMT", NOW + MAX_DELAY),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("٣", None),  # a non-ASCII digit is not delay-seconds
    ],
)
def test_parse_retry_after(value: str | None, expected: datetime | None) -> None:
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Mon, 06 Jan 2025 10:00:00 GMT", datetime(2025, 1, 6, 10, tzinfo=UTC)),
        ("Mon, 06 Jan 2025 11:00:00 +0100", datetime(2025, 1, 6, 10, tzinfo=UTC)),
        ("not a date", None),
        ("   ", None),
        (None, None),
    ],
)
def test_parse_http_date(value: str | None, expected: datetime | None) -> None:
    assert parse_http_date(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("max-age=300", 300),
        ("public, max-age=60, must-revalidate", 60),
        ('max-age="90"', 90),
        ("MAX-AGE=10", 10),
        ("s-maxage=100", None),  # for shared caches, not for us
        ("no-cache", 0),
        ("private, no-store", 0),
        ("max-age=99999999999999", int(MAX_DELAY.total_seconds())),
        ("max-age=", None),
        ("public", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_max_age(value: str | None, expected: int | None) -> None:
    assert parse_max_age(value) == expected


@pytest.mark.parametrize(
    ("cache_control", "expires", "date", "expected"),
    [
        ("max-age=60", "Mon, 06 Jan 2025 13:00:00 GMT", None, 60),  # max-age wins
        (None, "Mon, 06 Jan 2025 13:00:00 GMT", None, 3600),  # from our clock
        (None, "Mon, 06 Jan 2025 13:00:00 GMT", "Mon, 06 Jan 2025 12:50:00 GMT", 600),  # server's
        (None, "Mon, 06 Jan 2025 11:00:00 GMT", None, 0),  # already expired
        (None, "0", None, 0),  # invalid Expires means expired
        (None, None, "Mon, 06 Jan 2025 12:50:00 GMT", None),
        (None, None, None, None),
    ],
)
def test_freshness_seconds(
    cache_control: str | None, expires: str | None, date: str | None, expected: int | None
) -> None:
    assert freshness_seconds(cache_control, expires, date, NOW) == expected
