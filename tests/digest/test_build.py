"""The digest model, table-driven and pure: collapsing one story from several sources, grouping,
the cap, the subject line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aggregator.db.digests import WindowPost
from aggregator.digest.build import (
    Labels,
    build_digest,
    display_title,
    filter_label,
    same_story,
    title_words,
    two_lines,
)

LABELS = Labels({"KZ": "Kazakhstan", "UZ": "Uzbekistan", "RU": "Russia"},
                {"terrorism": "Terrorism", "military": "Military and defence", "diplomacy": "Diplomacy"},
                {"central-asia": "Central Asia"})
T = datetime(2025, 3, 10, 12, tzinfo=UTC)


def post(i: int, title: str, source: int, *, hours: int = 0, countries: tuple[str, ...] = ("KZ",),
         topics: tuple[str, ...] = (), others: tuple[str, ...] = ()) -> WindowPost:
    return WindowPost(i, title, f"https://e.example/{i}", T - timedelta(hours=hours), T, f"Summary {i}",
                      list(countries), list(countries[:1]), list(topics), source, f"Source {source}", list(others), 0)


@pytest.mark.parametrize(("a", "b", "same"), [
    ("Kazakhstan detains twelve suspected militants in Almaty", "Kazakhstan detains twelve suspected militants in "
     "Almaty - Caspian Daily", True),
    ("Kazakhstan detains twelve suspected militants in Almaty", "Kazakhstan detains 12 suspected militants in Almaty",
     True),  # 6 of 8 words
    ("Kazakhstan detains twelve suspected militants", "Uzbekistan detains twelve suspected smugglers", False),
    ("Weekly update", "Weekly update", True),
    ("Weekly update 5", "Weekly update 6", False),
    ("Daily briefing: 10 March", "Daily briefing: 11 March", False),
    ("", "", False),
])
def test_same_story(a: str, b: str, same: bool) -> None:
    assert same_story(title_words(a), title_words(b)) is same


@pytest.mark.parametrize(("title", "source", "shown"), [
    ("Raid in Almaty - Caspian Daily", "Caspian Daily", "Raid in Almaty"),
    ("Raid in Almaty | caspian daily", "Caspian Daily", "Raid in Almaty"),
    ("Raid in Almaty - Caspian Daily", "Steppe Wire", "Raid in Almaty - Caspian Daily"),
    ("Russia - Kazakhstan talks", None, "Russia - Kazakhstan talks"),
])
def test_display_title(title: str, source: str | None, shown: str) -> None:
    assert display_title(title, source) == shown


def test_copies_from_other_sources_collapse_but_a_source_never_collapses_its_own_posts() -> None:
    posts = [
        post(1, "Kazakhstan detains twelve suspected militants in Almaty", 2, topics=("terrorism",)),
        post(2, "Kazakhstan detains twelve suspected militants in Almaty", 1, hours=1, topics=("military",)),
        post(3, "Kazakhstan detains twelve suspected militants in Almaty", 1, hours=2),  # source 1 again
        post(4, "Uzbekistan and Kazakhstan sign a border agreement", 1, hours=3, others=("Source 9",)),
    ]
    digest = build_digest(posts, {"country": ["KZ"]}, LABELS, total=4, max_items=10)
    items = [i for s in digest.sections for i in s.items]
    assert [(i.title, i.also) for i in sorted(items, key=lambda i: -i.published.timestamp())] == [
        ("Kazakhstan detains twelve suspected militants in Almaty", ("Source 1",)),
        ("Kazakhstan detains twelve suspected militants in Almaty", ()),
        ("Uzbekistan and Kazakhstan sign a border agreement", ("Source 9",)),
    ]
    assert "Military and defence" in items[0].tags or "Military and defence" in items[1].tags, "tags of all copies"
    assert (digest.new, digest.subject) == (3, "3 new: Kazakhstan")


def test_grouped_by_topic_for_places_and_by_country_for_topics() -> None:
    posts = [post(1, "Alpha one two three", 1, topics=("terrorism",)), post(2, "Beta one two three", 2,
             countries=("UZ",), topics=("terrorism",)), post(3, "Gamma one two three", 3, countries=("RU", "KZ"))]
    by_topic = build_digest(posts, {"region": ["central-asia"]}, LABELS, total=3, max_items=10)
    assert [(s.title, len(s.items)) for s in by_topic.sections] == [("Terrorism", 2), ("Other topics", 1)]
    by_country = build_digest(posts, {"topic": ["terrorism"]}, LABELS, total=3, max_items=10)
    assert [s.title for s in by_country.sections] == ["Kazakhstan", "Russia", "Uzbekistan"]
    assert by_country.grouped_by == "country"


def test_the_cap_shows_the_newest_and_counts_the_rest() -> None:
    posts = [post(i, f"Story number {i} about something else", i, hours=i) for i in range(1, 31)]
    digest = build_digest(posts, {}, LABELS, total=45, max_items=10)
    shown = [i.title for s in digest.sections for i in s.items]
    assert len(shown) == 10 and "Story number 1 about something else" in shown
    assert (digest.shown, digest.more, digest.new) == (10, 35, 45)


@pytest.mark.parametrize(("params", "label"), [
    ({}, "All countries and topics"),
    ({"country": ["KZ"], "topic": ["terrorism"]}, "Kazakhstan · Terrorism"),
    ({"region": ["central-asia"], "q": "drones"}, "Central Asia · “drones”"),
    ({"country": ["KZ", "XX"]}, "Kazakhstan · XX"),
])
def test_filter_label(params: dict[str, object], label: str) -> None:
    assert filter_label(params, LABELS) == label


@pytest.mark.parametrize(("text", "expected"), [
    ("Short.", "Short."),
    ("  spaced\n\nout  ", "spaced out"),
    ("word " * 100, ("word " * 44).strip() + "…"),
])
def test_two_lines(text: str, expected: str) -> None:
    assert two_lines(text) == expected
    assert len(two_lines(text)) <= 221
