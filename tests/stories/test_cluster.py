"""Story decisions, table-driven on small synthetic posts: join, start, stay alone, merge, expire."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from aggregator.stories import cluster
from aggregator.stories.cluster import BANDS, Params, StoryIndex, bands_for_copy, similarity
from aggregator.stories.features import MINHASH_SIZE, PostFeatures, extract, near_copy
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


def _differing(features: PostFeatures, positions: list[int]) -> PostFeatures:
    """The post with its MinHash signature changed at these positions (a copy edited a little)."""
    signature = list(features.minhash)
    for i in positions:
        signature[i] ^= 1
    return dataclasses.replace(features, minhash=tuple(signature))


ROWS = MINHASH_SIZE // BANDS


@pytest.mark.parametrize(("positions", "reason"), [
    # 12 of 64 minimums differ, one in each of 12 bands: 0.81 >= 0.8, found by the 4 whole bands left
    ([band * ROWS for band in range(12)], "duplicate"),
    # 13 differ: 0.797, not a copy (the same words still make it the same event)
    ([band * ROWS for band in range(13)], "similar"),
    ([], "duplicate"),
])
def test_a_copy_is_found_through_the_fewest_bands_it_can_share(positions: list[int], reason: str) -> None:
    """Candidates sharing fewer band keys than a near copy must are not compared signature by
    signature; a copy edited in as many bands as the threshold allows is still one."""
    decision = index_with((1, DERBENT_EN, T0)).decide(_differing(DERBENT_EN, positions), T0 + timedelta(hours=1))
    assert (decision.story, decision.reason) == (1, reason)


@pytest.mark.parametrize(("duplicate", "bands"), [(0.8, 4), (0.75, 0), (0.9, 10), (1.0, 16), (0.5, 0)])
def test_bands_a_near_copy_shares(duplicate: float, bands: int) -> None:
    assert bands_for_copy(Params(duplicate=duplicate)) == bands


def _worst_edits(rng: random.Random) -> list[list[int]]:
    """Edits of a signature: one position in each of the first k bands (the most bands k edits can
    spoil, which is where a bound one too high shows), then random ones."""
    spread = [[band * ROWS + rng.randrange(ROWS) for band in range(k)] for k in range(BANDS + 1)]
    return spread + [rng.sample(range(MINHASH_SIZE), rng.randint(0, 20)) for _ in range(1000)]


@pytest.mark.parametrize("duplicate", [0.7, 0.8, 0.85, 0.9, 1.0])
def test_every_near_copy_shares_the_bands_it_must(duplicate: float) -> None:
    """For edits of a signature: whenever the estimate makes it a near copy, the index counts at
    least `bands_for_copy` band keys shared with it, so skipping candidates that share fewer loses
    no copy."""
    rng = random.Random(5)
    index = index_with((1, DERBENT_EN, T0))
    for positions in _worst_edits(rng):
        edited = _differing(DERBENT_EN, positions)
        bands: Counter[int] = Counter()
        index.candidates(edited, T0, None, bands)
        if near_copy(DERBENT_EN, edited) >= duplicate:
            assert bands[1] >= bands_for_copy(Params(duplicate=duplicate)), positions


def test_a_copy_of_copies_is_found_through_bands_they_share() -> None:
    """Band keys held by several members (an agency's text carried by several outlets) count for
    each of them."""
    index = index_with((1, DERBENT_EN, T0), (2, DERBENT_EN, T0 + timedelta(minutes=5)))
    edited = _differing(DERBENT_EN, [band * ROWS for band in range(12)])
    bands: Counter[int] = Counter()
    index.candidates(edited, T0, None, bands)
    assert bands == {1: 4, 2: 4}
    decision = index.decide(edited, T0 + timedelta(hours=1))
    assert (decision.story, decision.reason) == (1, "duplicate")


def test_a_candidate_that_cannot_be_a_copy_is_not_compared_as_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The other language's report shares no band: its signature is not read (the saving), and it
    still joins by similarity."""
    compared = []
    real = cluster.near_copy
    monkeypatch.setattr(cluster, "near_copy", lambda a, b: compared.append(b) or real(a, b))
    decision = index_with((1, DERBENT_EN, T0)).decide(DERBENT_RU, T0 + timedelta(hours=5))
    assert (decision.story, decision.reason, compared) == (1, "similar", [])
    index_with((1, DERBENT_EN, T0)).decide(DERBENT_EN, T0 + timedelta(hours=1))
    assert compared == [DERBENT_EN]


def _ranked_by_rule(index: StoryIndex, features: PostFeatures, at: datetime) -> list[int]:
    """The ranking rule written plainly: members sharing the most index keys first, ties by post
    id, only those within the window of `at`, at most MAX_CANDIDATES."""
    keys = set(cluster.index_keys(features))
    low, high = max(index.horizon(at), at - index.params.window), at + index.params.window
    shared = {m.post: len(keys & set(m.keys)) for m in index.members.values() if low <= m.at <= high}
    return sorted((p for p in shared if shared[p]), key=lambda p: (-shared[p], p))[:cluster.MAX_CANDIDATES]


@pytest.mark.parametrize("array_ranking_from", [0, 10**9])  # always on arrays, never
def test_candidates_are_the_members_sharing_most_keys_ties_by_post_id(
        array_ranking_from: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Posts drawn from a small vocabulary of names and numbers, so keys are shared by many members
    and counts tie often; arrival order differs from post id order, and some members fall outside
    the window of the post asked about. Both ways of counting follow the rule."""
    monkeypatch.setattr(cluster, "ARRAY_RANKING_FROM", array_ranking_from)
    rng = random.Random(5)
    names = [f"Name{a}{b}" for a in "BDGKMRTVZ" for b in "aeiou"]
    index = StoryIndex(Params(window=timedelta(hours=24)))
    posts = rng.sample(range(1, 5000), 600)

    def text() -> str:
        return " ".join(rng.sample(names, 5) + [f"report {rng.randint(2, 30)}" for _ in range(3)] + ["said"] * 8)

    for number, post in enumerate(posts):
        at = T0 + timedelta(minutes=5 * number + rng.randint(-600, 600))
        index.record(post, post, extract("Officials say", text(), tags("RU")), at)
    assert index.newest is not None
    for trial in range(60):
        features = extract("Officials ask", text(), tags("KZ"))
        at = index.newest - timedelta(minutes=rng.randint(0, 30 * 60))
        expected = _ranked_by_rule(index, features, at)
        assert len(expected) == cluster.MAX_CANDIDATES, trial  # enough members to choose from
        assert [m.post for m in index.candidates(features, at)] == expected, trial
        assert [m.post for m in index.candidates(features)] == [  # no window asked: none checked
            m.post for m in sorted(index.members.values(), key=lambda m: (-len(set(m.keys) & set(
                cluster.index_keys(features))), m.post))[:cluster.MAX_CANDIDATES]], trial
