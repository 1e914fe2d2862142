"""When to poll a feed next: pure decisions from its publishing rhythm, the server's wishes and
its failures. No I/O, no clock: `now` and the random source are passed in.

- A feed is polled about twice per expected new post, bounded to [min_interval, max_interval].
- Never sooner than the server allows: RSS <ttl>, Cache-Control max-age / Expires, Retry-After.
- Failures back off exponentially with jitter; failures whose ErrorKind `disables` (404, 410, not
  a feed: see the table in aggregator.errors) counted in a row past a limit disable the feed, with
  the reason, so a person can look at it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from aggregator.errors import ErrorKind


@dataclass(frozen=True, slots=True)
class Limits:
    min_interval: int = 300
    max_interval: int = 86400
    default_interval: int = 3600
    disable_after_failures: int = 10
    min_retry: int = 60  # a failed feed waits at least this long, whatever min_interval says
    jitter: float = 0.1  # +/- fraction applied to every delay, so feeds do not poll in lockstep


@dataclass(frozen=True, slots=True)
class Decision:
    next_poll_at: datetime
    poll_interval: int  # the feed's own rhythm, kept across failures
    server_min_interval: int
    disable_reason: str | None = None


def clamp(value: float, low: int, high: int) -> int:
    return int(min(max(value, low), high))


def publishing_interval(published: Sequence[datetime], now: datetime, limits: Limits) -> int | None:
    """Half the typical gap between the newest posts, counting the silence since the last one.

    The silence term makes a blog that stopped publishing drift toward max_interval instead of
    being polled at the rate it had years ago.
    """
    times = sorted((t for t in published if t <= now), reverse=True)[:10]
    if len(times) < 2:
        return None
    typical = (now - times[-1]).total_seconds() / len(times)  # mean of the gaps now→newest→…→oldest
    return clamp(typical / 2, limits.min_interval, limits.max_interval)


def server_min_interval(ttl_minutes: int | None, max_age: int | None, limits: Limits) -> int:
    """The shortest interval the server asked for (capped at max_interval: a year-long TTL is a typo)."""
    wish = max((ttl_minutes or 0) * 60, max_age or 0)
    return min(wish, limits.max_interval)


def _jittered(seconds: float, rng: random.Random, limits: Limits) -> float:
    return seconds * (1 + rng.uniform(-limits.jitter, limits.jitter))


def after_success(
    now: datetime,
    *,
    interval: int,
    server_min: int,
    limits: Limits,
    rng: random.Random,
    retry_after: datetime | None = None,
) -> Decision:
    interval = clamp(interval, limits.min_interval, limits.max_interval)
    delay = max(_jittered(interval, rng, limits), server_min, limits.min_interval)
    next_at = now + timedelta(seconds=delay)
    if retry_after and retry_after > next_at:
        next_at = retry_after
    return Decision(next_at, interval, server_min)


def after_failure(
    now: datetime,
    *,
    interval: int,
    server_min: int,
    failures: int,
    permanent_failures: int,
    kind: ErrorKind,
    reason: str,
    limits: Limits,
    rng: random.Random,
    retry_after: datetime | None = None,
) -> Decision:
    """`failures` and `permanent_failures` (those whose kind disables) count this failure too."""
    backoff = limits.min_interval * 2 ** min(failures - 1, 20)
    delay = min(max(backoff, interval if failures > 3 else 0), limits.max_interval)
    delay = max(_jittered(delay, rng, limits), server_min, limits.min_retry)
    next_at = now + timedelta(seconds=delay)
    if retry_after and retry_after > next_at:
        next_at = min(retry_after, now + timedelta(seconds=limits.max_interval * 7))
    disable = None
    if kind.disables and permanent_failures >= limits.disable_after_failures:
        disable = disable_reason(permanent_failures, kind, reason)
    return Decision(next_at, interval, server_min, disable)


def disable_reason(failures: int, kind: ErrorKind, reason: str) -> str:
    """Why a source was disabled, for the person reading `aggregator feeds list` or the sources API:
    plain words first, then the stored code and message of the last failure."""
    return f"{failures} polls in a row failed, the last because {kind.words} ({reason})"
