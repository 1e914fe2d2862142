"""Story decisions, table-driven on small synthetic posts: join, start, stay alone, merge, expire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aggregator.stories.cluster import Params, StoryIndex, similarity
from aggregator.stories.features import PostFeatures, extract
from aggregator.tagging.records import KIND_COUNTRY, KIND_TOPIC, Tag
from tests.stories import samples

T0 = datetime(2024, 6, 23, 12, tzinfo=UTC)


def tags(countries: str = "", places: str = "", topics: str = "") -> list[Tag]:
    return ([Tag(KIND_COUNTRY, c, "primary", 1.0, ()) for c in countries.split()]
            + [Tag("place", p, None, 1.0, ()) for p in places.split()]
            + [Tag(KIND_TOPIC, t, None, 1.0, ()) for t in topics.split()])


# Two reports of one event in two languages, and look-alikes that are other events.
DERBENT_EN = extract(*samples.DERBENT_EN, tags("RU", "dagestan", "terrorism"))
DERBENT_RU = extract(*samples.DERBENT_RU, tags("RU", "dagestan", "terrorism"))
NALCHIK_RU = extract(*samples.NALCHIK_RU, tags("RU", "kabardino-balkaria"))
AIRPORT_EN = extract(*samples.AIRPORT_EN, tags("RU IL", "dagestan", "unrest"))
KABUL_EN = extract(*samples.KABUL_EN, tags("AF RU", "", "terrorism"))
TINY = extract("Explosion", "Explosion reported in Makhachkala, Dagestan.", tags("RU", "dagestan"))


def index_with(*posts: tuple[int, PostFeatures, datetime]) -> StoryIndex:
    index = StoryIndex(Params())
    for post, features, at in posts:
        index.add(post, features, at)
    return index


@pytest.mark.parametrize(("existing", "new", "at", "joins", "reason"), [
    ([(1, DERBENT_EN, T0)], DERBENT_RU, T0 + timedelta(hours=5), 1, "similar"),     # across languages
    ([(1, DERBENT_EN, T0)], DERBENT_EN, T0 + timedelta(hours=1), 1, "duplicate"),   # a wire copy
    ([(1, DERBENT_EN, T0)], DERBENT_RU, T0 + timedelta(hours=80), None, "new"),     # the story has gone quiet
    ([(1, DERBENT_EN, T0)], KABUL_EN, T0 + timedelta(hours=1), None, "new"),        # another country's event
    ([(1, AIRPORT_EN, T0)], NALCHIK_RU, T0 + timedelta(hours=2), None, "new"),      # same day, another republic
    ([(1, DERBENT_EN, T0)], TINY, T0 + timedelta(hours=1), None, "tiny"),           # too short to tell
    ([(1, TINY, T0)], DERBENT_EN, T0 + timedelta(hours=1), None, "new"),            # nothing joins a tiny post
    ([], DERBENT_EN, T0, None, "new"),
])
def test_decide(existing: list[tuple[int, PostFeatures, datetime]], new: PostFeatures, at: datetime,
                joins: int | None, reason: str) -> None:
    decision = index_with(*existing).decide(new, at)
    assert (decision.story, decision.reason) == (joins, reason)


def test_a_late_post_merges_two_stories_into_the_older() -> None:
    index = StoryIndex(Params())
    index.add(1, DERBENT_EN, T0)
    index.add(2, NALCHIK_RU, T0 + timedelta(hours=1))
    # Pretend the Nalchik post had been a Derbent report the clustering missed: a third post that
    # matches both merges them, the older story's id surviving.
    index.record(3, 2, DERBENT_RU, T0 + timedelta(hours=2))
    story, decision = index.add(4, DERBENT_EN, T0 + timedelta(hours=3))
    assert (story, decision.merge) == (1, (2,))
    assert {m.story for m in index.members.values()} == {1}


def test_memory_is_bounded_by_the_window() -> None:
    index = StoryIndex(Params(window=timedelta(hours=72)))
    for i in range(10):
        index.add(i, KABUL_EN if i % 2 else DERBENT_EN, T0 + timedelta(days=4 * i))
    assert len(index.members) == 1
    assert len(index.story_members) == 1


def test_similarity_prefers_the_same_event() -> None:
    p = Params()
    assert similarity(DERBENT_EN, DERBENT_RU, p) >= p.threshold
    assert similarity(AIRPORT_EN, NALCHIK_RU, p) < p.threshold
    assert similarity(DERBENT_EN, KABUL_EN, p) < p.threshold


def test_a_post_older_than_the_window_of_the_newest_is_never_kept() -> None:
    """It can never be a candidate again, so an archive's first poll leaves nothing in memory; a
    story it joins still begins at its date."""
    day = timedelta(days=1)
    index = StoryIndex(Params(window=timedelta(hours=72)))
    index.add(1, DERBENT_EN, T0 + 8 * day)
    index.add(2, KABUL_EN, T0 + 10 * day)  # the window now reaches back to day 7
    assert index.add(3, NALCHIK_RU, T0)[0] == 3  # alone, and not kept
    story, _ = index.add(4, DERBENT_RU, T0 + 6 * day)  # older than the window, within reach of post 1
    assert story == 1 and sorted(index.members) == [1, 2]
    assert index.story_first == {1: T0 + 6 * day, 2: T0 + 10 * day}
