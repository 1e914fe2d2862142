"""Is a day's count well above its recent baseline? Pure: counts in, flags out.

The baseline of a day is the median of the `window` days before it, and its spread the median
absolute deviation (MAD) of those days: both ignore the odd busy day in the window, so one earlier
surge does not hide the next. Weekly rhythm (quiet weekends) is damped by comparing against the
higher of the plain median and the median of the same weekday in the window. A day is a surge when
its count exceeds the baseline by `threshold` spreads *and* by `min_excess` posts, so a country with
one post a week does not "surge" on its second. The spread is at least √baseline (counts of
independent arrivals vary that much by chance), so a steady source's count is not flagged for the
ordinary wobble that a zero MAD would make look exceptional.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median

# 1.4826 × MAD estimates the standard deviation of normally distributed counts.
MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True, slots=True)
class Surge:
    index: int  # position of the day in the series
    count: int
    baseline: float
    score: float  # how many spreads above the baseline


def surges(counts: Sequence[int], *, window: int = 28, threshold: float = 3.0, min_excess: int = 3,
           min_history: int = 7) -> list[Surge]:
    """The days of `counts` (oldest first, one per day) that stand well above their baseline.

    Days with fewer than `min_history` days before them are never flagged: no baseline yet."""
    found = []
    for i, count in enumerate(counts):
        history = counts[max(0, i - window): i]
        if len(history) < min_history:
            continue
        same_weekday = history[len(history) - 7:: -7] if len(history) >= 7 else []
        base = max(median(history), median(same_weekday) if same_weekday else 0.0)
        spread = max(MAD_TO_SIGMA * median(abs(c - base) for c in history), math.sqrt(base), 1.0)
        score = (count - base) / spread
        if score >= threshold and count - base >= min_excess:
            found.append(Surge(i, count, base, round(score, 2)))
    return found
