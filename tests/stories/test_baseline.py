"""The surge rule, table-driven: a day well above its recent baseline, and nothing else."""

from __future__ import annotations

import pytest

from aggregator.stories.baseline import surges

FLAT = [2, 3, 2, 2, 3, 2, 2] * 4  # four quiet weeks


@pytest.mark.parametrize(("counts", "expected"), [
    ([*FLAT, 12], [28]),                      # a clear spike after a quiet month
    ([*FLAT, 5], []),                         # above the median, but within the noise
    ([*FLAT, 3], []),                         # an ordinary day
    ([0] * 28 + [2], []),                     # "twice as many" of almost nothing is no surge
    ([0] * 28 + [4], [28]),                   # from nothing to four posts in a day is
    ([9], []),                                # no history, no baseline
    ([1, 1, 1, 30, 1, 1, 1], []),             # too little history before the spike
    ([*FLAT, 12, 12], [28, 29]),              # a two-day surge is flagged on both days
    ([10, 10, 10, 10, 10, 0, 0] * 4 + [0], []),  # a quiet weekend is not a drop to flag, nor a rise
    ([10, 10, 10, 10, 10, 0, 0] * 4 + [10], []),  # Monday after the weekend is ordinary
])
def test_surges(counts: list[int], expected: list[int]) -> None:
    assert [s.index for s in surges(counts)] == expected


def test_one_earlier_surge_does_not_hide_the_next() -> None:
    counts = [*FLAT[:14], 20, *FLAT[:13], 20]
    assert [s.index for s in surges(counts)] == [14, 28]
