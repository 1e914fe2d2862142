"""The digest model, table-driven and pure: collapsing one story from several sources, grouping,
the cap, the subject line."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

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


def test_an_undated_post_shows_its_arrival_as_such() -> None:
    from dataclasses import replace

    from aggregator.digest.render import render_digest

    undated = replace(post(1, "Border posts in Batken", 1), date_estimated=True)
    digest = build_digest([undated, post(2, "Almaty raid", 2)], {}, LABELS, total=2, max_items=10)
    rendered = render_digest(digest, period_start=T - timedelta(days=1), now=T, more_url="m", feed_url="f",
                             with_html=True)
    text, page = rendered.in_zone(ZoneInfo("UTC"))
    assert text.count("undated, first seen 10 Mar 2025") == 1 and "Source 2 · 10 Mar 2025" in text
    assert page is not None and page.count("undated, first seen 10 Mar 2025") == 1


def test_posts_of_one_story_make_one_item_whatever_their_titles() -> None:
    """Reports of one event in two languages share no title word: their story makes them one item,
    and two posts of different stories stay apart however alike their titles."""
    def in_story(p: WindowPost, story: int) -> WindowPost:
        return replace(p, story_id=story)

    posts = [
        in_story(post(1, "Нападения на церкви в Дербенте и Махачкале", 3), 7),
        in_story(post(2, "Gunmen attack churches in Derbent and Makhachkala", 1, hours=1), 7),
        in_story(post(3, "Gunmen attack churches in Derbent and Makhachkala", 2, hours=2), 8),  # another event
        in_story(post(4, "Follow-up: death toll rises in Derbent", 3, hours=3), 7),  # same source, same story
    ]
    digest = build_digest(posts, {"country": ["KZ"]}, LABELS, total=4, max_items=10)
    items = sorted((i for s in digest.sections for i in s.items), key=lambda i: -i.published.timestamp())
    assert [(i.title, i.also) for i in items] == [
        ("Нападения на церкви в Дербенте и Махачкале", ("Source 1",)),
        ("Gunmen attack churches in Derbent and Makhachkala", ()),
    ]
    assert (digest.new, digest.stories) == (2, 2)


def test_a_source_shown_by_its_url_has_its_key_masked() -> None:
    keyed = "https://feeds.example/rss?api_key=s3cr3t-value"
    lead = replace(post(1, "Raid in Almaty", 1), source_name=keyed, other_sources=[f"{keyed}&x=1"])
    digest = build_digest([lead, post(2, "Raid in Almaty", 2, others=(keyed,))], {}, LABELS, total=2, max_items=10)
    [item] = [i for section in digest.sections for i in section.items]
    shown = repr((item.source, item.also))
    assert "s3cr3t" not in shown and "feeds.example" in item.source
