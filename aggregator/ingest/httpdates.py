"""Pure parsing of the HTTP headers that tell us *when* to come back.

Servers tell a feed reader when to poll again in three ways: `Retry-After` (after a 429/503, and
sometimes on a 200), `Cache-Control: max-age`, and the older `Expires`. Header values in the wild
are often malformed, so every parser here returns None instead of raising: a bad header must never
turn a good fetch into a failure. Nothing here does I/O or reads the clock; `now` is passed in so
the scheduler and the tests decide what time it is.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

# A server asking us to wait longer than this is treated as asking for this long: it keeps a typo
# (or an hostile value) from overflowing datetime arithmetic or silencing a feed for years.
MAX_DELAY = timedelta(days=30)

_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)\"?", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|[,\s])(?:no-cache|no-store)(?:$|[,\s=])", re.IGNORECASE)


def parse_http_date(value: str | None) -> datetime | None:
    """An RFC 9110 HTTP-date (IMF-fixdate, RFC 850 or asctime) as an aware UTC datetime."""
    if not value or not value.strip():
        return None
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:  # HTTP-dates are always GMT, even when the zone is missing
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_retry_after(value: str | None, now: datetime) -> datetime | None:
    """The absolute UTC time a `Retry-After` value (delay-seconds or HTTP-date) points at.

    A date in the past means "now"; a delay longer than MAX_DELAY is shortened to it.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return now + _capped_delay(text)
    when = parse_http_date(text)
    if when is None:
        return None
    return min(max(when, now), now + MAX_DELAY)


def _capped_delay(digits: str) -> timedelta:
    """A delay-seconds value as a timedelta, without parsing absurdly long digit strings."""
    if len(digits) > 10:
        return MAX_DELAY
    return min(timedelta(seconds=int(digits)), MAX_DELAY)


def parse_max_age(cache_control: str | None) -> int | None:
    """Seconds of freshness from Cache-Control; 0 for no-cache/no-store, None when not stated."""
    if not cache_control:
        return None
    match = _MAX_AGE.search(cache_control)
    if match:
        return int(_capped_delay(match.group(1)).total_seconds())
    if _NO_CACHE.search(cache_control):
        return 0
    return None


def freshness_seconds(cache_control: str | None, expires: str | None, date: str | None, now: datetime) -> int | None:
    """How long the response stays fresh: max-age wins over Expires, as RFC 9111 says.

    Expires is measured from the server's own Date header when present, so a server whose clock is
    off still gets the lifetime it meant.
    """
    max_age = parse_max_age(cache_control)
    if max_age is not None:
        return max_age
    if expires is None:
        return None
    expires_at = parse_http_date(expires)
    if expires_at is None:
        return 0  # RFC 9111: an invalid Expires (e.g. "0") means already expired
    origin = parse_http_date(date) or now
    seconds = int((expires_at - origin).total_seconds())
    return max(0, min(seconds, int(MAX_DELAY.total_seconds())))
