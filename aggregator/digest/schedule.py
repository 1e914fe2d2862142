"""When a subscription's digest is due: pure functions of (timezone, send hour, now, last period).

A period is the subscriber's local calendar date. The digest of a period is due once the local
clock has passed the send hour on that date; the database keeps one digest row per (subscription,
period), so however often the job runs, and however many processes run it, a date yields one
digest. Days the service missed are not sent late one by one: the next due period's window starts
where the last delivered digest ended, so one email covers the whole gap.

DST is zoneinfo's business: a send hour that does not exist that day (02:00 on a spring-forward
night) resolves to the moment the clocks jump, an hour that occurs twice resolves to the
first occurrence; either way a date has exactly one send instant.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from aggregator.errors import InvalidInputError

RETRY_CAP = timedelta(hours=1)


def zone(name: str) -> ZoneInfo:
    """The IANA zone called `name`; InvalidInputError for anything else (a path, a typo)."""
    if not name or name not in _zone_names():
        raise InvalidInputError("timezone", f"not an IANA time zone name: {name[:60]!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInputError("timezone", f"not an IANA time zone name: {name[:60]!r}") from exc


_ZONES: frozenset[str] = frozenset()


def _zone_names() -> frozenset[str]:
    global _ZONES
    if not _ZONES:
        _ZONES = frozenset(available_timezones() | {"UTC"})
    return _ZONES


def zone_names() -> list[str]:
    return sorted(_zone_names())


def send_instant(day: date, tz: ZoneInfo, send_hour: int) -> datetime:
    """The UTC instant of `send_hour` o'clock on local date `day` (see the module note on DST:
    zoneinfo reads a wall time in a gap with the offset before it, which lands on the transition)."""
    return datetime.combine(day, time(send_hour), tz).astimezone(UTC)


def due_period(tz: ZoneInfo, send_hour: int, now: datetime, last_period: date | None, *,
               force: bool = False) -> date | None:
    """The period whose digest should go out now, or None. `force` ignores the send hour (it still
    never repeats a period that already has its digest)."""
    today = now.astimezone(tz).date()
    if not force and now < send_instant(today, tz, send_hour):
        return None
    if last_period is not None and last_period >= today:
        return None
    return today


def next_send(tz: ZoneInfo, send_hour: int, now: datetime, last_period: date | None) -> datetime:
    """When the next digest is due (for listings); now or in the past means due at the next check."""
    today = now.astimezone(tz).date()
    day = today if last_period is None or last_period < today else today + timedelta(days=1)
    return send_instant(day, tz, send_hour)


def retry_delay(attempts: int, base_seconds: float) -> timedelta:
    """Backoff after a temporary failure: base, 2x base, 4x base, … at most an hour."""
    seconds = base_seconds * (2 ** max(0, attempts - 1))
    return min(timedelta(seconds=seconds), RETRY_CAP)
