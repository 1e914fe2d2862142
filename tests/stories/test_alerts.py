"""Surge alerts, table-driven: today's new stories against four weeks of the same key."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from aggregator.stories.alerts import series, surge_alerts

TODAY = date(2025, 3, 10)  # a Monday
QUIET = [2, 3, 2, 2, 3, 2, 2] * 4  # four ordinary weeks


def rows(kind: str, code: str, history: list[int], today: int) -> list[tuple[str, str, date, int]]:
    days = [TODAY - timedelta(days=len(history) - i) for i in range(len(history))]
    return [(kind, code, d, c) for d, c in zip(days, history, strict=True) if c] + (
        [(kind, code, TODAY, today)] if today else [])


@pytest.mark.parametrize(("history", "today", "fires"), [
    (QUIET, 12, True),                        # a clear surge of distinct stories
    (QUIET, 5, False),                        # a busy day, within the noise
    (QUIET, 0, False),                        # nothing today
    ([0] * 28, 2, False),                     # two stories where there were none: not yet a surge
    ([0] * 28, 4, True),                      # four where there were none is
    ([10, 10, 10, 10, 10, 0, 0] * 4, 12, False),  # a weekday after quiet weekends is ordinary
    ([1] * 28, 3, False),                     # one a day, then three: within the noise
    ([1] * 3, 9, True),                       # silent for weeks (missing days are zeros), then nine
])
def test_surge_alerts(history: list[int], today: int, fires: bool) -> None:
    alerts = surge_alerts(rows("country", "KG", history, today), TODAY)
    assert bool(alerts) is fires
    if fires:
        assert (alerts[0].kind, alerts[0].code, alerts[0].count, alerts[0].day) == ("country", "KG", today, TODAY)


def test_every_key_is_judged_on_its_own_and_the_strongest_comes_first() -> None:
    found = surge_alerts(rows("country", "KG", QUIET, 12) + rows("topic", "terrorism", QUIET, 30)
                         + rows("place", "dagestan", QUIET, 3), TODAY)
    assert [(a.kind, a.code) for a in found] == [("topic", "terrorism"), ("country", "KG")]


def test_series_fills_missing_days_with_zero() -> None:
    assert series({TODAY: 4, TODAY - timedelta(days=2): 1}, TODAY, window=3) == [0, 1, 0, 4]
