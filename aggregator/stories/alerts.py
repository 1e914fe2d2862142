"""Surge alerts: which countries, places and topics have many more new stories today than usual.

Pure: daily distinct-story counts in, alerts out. The rule is the trend charts' (stories/baseline.py:
median and MAD of the 28 days before, the same weekday's median as a floor for weekly rhythm, at least
`min_excess` stories above it), applied to today for every key. Counting stories, not posts, is
what keeps one event reported by twenty outlets from looking like a surge; the caller's counts
leave out quiet posts (backfills, first polls, republished archives), so those cannot raise one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from aggregator.stories.baseline import surges

WINDOW = 28


@dataclass(frozen=True, slots=True)
class Alert:
    kind: str  # country | place | topic
    code: str
    day: date
    count: int  # distinct new stories that day
    baseline: float
    score: float  # spreads above the baseline


def series(counts: Mapping[date, int], today: date, window: int = WINDOW) -> list[int]:
    """The `window` days before `today` and today, oldest first (missing days count 0)."""
    return [counts.get(today - timedelta(days=window - i), 0) for i in range(window + 1)]


def surge_alerts(rows: Iterable[tuple[str, str, date, int]], today: date, *, threshold: float = 3.0,
                 min_excess: int = 3, window: int = WINDOW) -> list[Alert]:
    """Alerts for today from (kind, code, day, stories) rows, strongest first."""
    by_key: dict[tuple[str, str], dict[date, int]] = defaultdict(dict)
    for kind, code, day, count in rows:
        by_key[(kind, code)][day] = count
    alerts = []
    for (kind, code), counts in by_key.items():
        if counts.get(today, 0) == 0:
            continue
        days = series(counts, today, window)
        found = [s for s in surges(days, window=window, threshold=threshold, min_excess=min_excess)
                 if s.index == len(days) - 1]
        alerts += [Alert(kind, code, today, s.count, s.baseline, s.score) for s in found]
    alerts.sort(key=lambda a: (-a.score, a.kind, a.code))
    return alerts
