"""Table-driven tests of the pure scheduling decisions."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from aggregator.errors import ErrorKind
from aggregator.ingest import next_poll

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LIMITS = next_poll.Limits(min_interval=300, max_interval=86400, disable_after_failures=3, jitter=0.0)
H = 3600


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("published", "expected"),
    [
        ([], None),
        ([ago(60)], None),  # one post says nothing about a rhythm
        ([ago(1 * H), ago(2 * H), ago(3 * H), ago(4 * H)], 1800),  # hourly blog: poll every 30 min
        ([ago(60), ago(120), ago(180)], 300),  # very busy: floor at min_interval
        ([ago(400 * 86400), ago(401 * 86400)], 86400),  # dormant for a year: ceiling
        ([NOW + timedelta(days=3), ago(2 * H), ago(4 * H)], 3600),  # future dates are ignored
    ],
)
def test_publishing_interval(published: list[datetime], expected: int | None) -> None:
    assert next_poll.publishing_interval(published, NOW, LIMITS) == expected


@pytest.mark.parametrize(
    ("ttl", "max_age", "expected"),
    [(None, None, 0), (60, None, 3600), (None, 900, 900), (30, 7200, 7200), (10**6, None, 86400)],
)
def test_server_min_interval(ttl: int | None, max_age: int | None, expected: int) -> None:
    assert next_poll.server_min_interval(ttl, max_age, LIMITS) == expected


@pytest.mark.parametrize(
    ("interval", "server_min", "retry_after", "expected_delay"),
    [
        (3600, 0, None, 3600),
        (60, 0, None, 300),  # below the floor
        (3600, 7200, None, 7200),  # the server's TTL wins
        (3600, 0, NOW + timedelta(hours=5), 5 * 3600),  # Retry-After wins
        (10**7, 0, None, 86400),  # the ceiling
    ],
)
def test_after_success(interval: int, server_min: int, retry_after: datetime | None, expected_delay: int) -> None:
    d = next_poll.after_success(NOW, interval=interval, server_min=server_min, limits=LIMITS,
                               rng=random.Random(1), retry_after=retry_after)
    assert (d.next_poll_at - NOW).total_seconds() == expected_delay
    assert d.disable_reason is None


@pytest.mark.parametrize(
    ("failures", "permanent", "kind", "expected_delay", "disabled"),
    [
        (1, 0, ErrorKind.TIMEOUT, 300, False),
        (2, 0, ErrorKind.TIMEOUT, 600, False),
        (5, 0, ErrorKind.TIMEOUT, 4800, False),
        (30, 0, ErrorKind.TIMEOUT, 86400, False),  # bounded
        (2, 2, ErrorKind.HTTP_PERMANENT, 600, False),
        (3, 3, ErrorKind.HTTP_PERMANENT, 1200, True),  # third disabling failure in a row disables
        (3, 3, ErrorKind.TIMEOUT, 1200, False),  # a failure that does not count never disables
    ],
)
def test_after_failure(failures: int, permanent: int, kind: ErrorKind, expected_delay: int, disabled: bool) -> None:
    d = next_poll.after_failure(NOW, interval=600, server_min=0, failures=failures, permanent_failures=permanent,
                               kind=kind, reason="http_404: gone", limits=LIMITS, rng=random.Random(1))
    assert (d.next_poll_at - NOW).total_seconds() == expected_delay
    assert (d.disable_reason is not None) == disabled
    if disabled:
        assert "http_404" in (d.disable_reason or "")


@pytest.mark.parametrize(("min_interval", "min_retry", "expected_delay"), [
    (5, 60, 60),  # a low shortest interval: a failing server still waits a minute
    (5, 10, 10),  # unless a shorter wait is configured (the soak's compressed hour)
    (300, 10, 300),  # the backoff from the shortest interval is longer anyway
])
def test_a_failed_feed_waits_at_least_min_retry(min_interval: int, min_retry: int, expected_delay: int) -> None:
    limits = next_poll.Limits(min_interval=min_interval, min_retry=min_retry, jitter=0.0)
    d = next_poll.after_failure(NOW, interval=600, server_min=0, failures=1, permanent_failures=0,
                               kind=ErrorKind.TIMEOUT, reason="timeout", limits=limits, rng=random.Random(1))
    assert (d.next_poll_at - NOW).total_seconds() == expected_delay


def test_failure_honours_retry_after() -> None:
    later = NOW + timedelta(hours=3)
    d = next_poll.after_failure(NOW, interval=600, server_min=0, failures=1, permanent_failures=0,
                               kind=ErrorKind.HTTP_TEMPORARY, reason="http_429", limits=LIMITS, rng=random.Random(1),
                               retry_after=later)
    assert d.next_poll_at == later


def test_jitter_spreads_polls_but_stays_bounded() -> None:
    limits = next_poll.Limits(jitter=0.1)
    rng = random.Random(7)
    delays = {(next_poll.after_success(NOW, interval=3600, server_min=0, limits=limits, rng=rng).next_poll_at - NOW)
              .total_seconds() for _ in range(50)}
    assert len(delays) > 10
    assert all(3240 <= d <= 3960 for d in delays)
