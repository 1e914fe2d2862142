"""The page parts written in Python: every value escaped, the markup the templates had."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

import pytest
from lxml import html as lxml_html
from markupsafe import Markup

from aggregator.web.fragments import chip_list, facet_items, post_list


@dataclass
class Link:
    name: str
    href: str
    count: int | None = None
    active: bool = False


@dataclass
class Post:
    id: int = 7
    title: str = "Border talks"
    source: str | None = "Window on Eurasia"
    published: datetime = datetime(2026, 12, 5, 21, 34, tzinfo=UTC)
    estimated: bool = False
    lang: str | None = "en"
    summary: str = "Talks on the border resumed."
    countries: list[Link] = field(default_factory=list)
    topics: list[Link] = field(default_factory=list)
    places: list[Link] = field(default_factory=list)
    story_id: int | None = None
    story_sources: int = 0


HOSTILE = '<script>alert("x")</script> & \'quoted\''


def test_chips_are_links_by_kind_countries_first() -> None:
    chips = chip_list([Link("Kazakhstan", "/?country=KZ&topic=terrorism")], [Link("Almaty", "/?place=almaty")],
                      [Link("Terrorism", "/?topic=terrorism")])
    assert isinstance(chips, Markup)
    tree = lxml_html.fragment_fromstring(str(chips))
    assert (tree.tag, tree.get("class"), tree.get("aria-label")) == ("ul", "chips", "Tags")
    assert [(a.get("class"), a.get("href"), a.text) for a in tree.iter("a")] == [
        ("chip country", "/?country=KZ&topic=terrorism", "Kazakhstan"),
        ("chip place", "/?place=almaty", "Almaty"),
        ("chip topic", "/?topic=terrorism", "Terrorism")]


def test_a_post_without_tags_has_no_chip_list() -> None:
    assert chip_list([], [], []) == Markup()


@pytest.mark.parametrize("build", [
    lambda link: chip_list([link], [], []),
    lambda link: facet_items([link]),
])
def test_names_and_links_are_escaped(build: object) -> None:
    link = Link(HOSTILE, '/?q="><script>alert(1)</script>')
    out = str(build(link))  # type: ignore[operator]
    assert "<script>" not in out
    tree = lxml_html.fragment_fromstring(out, create_parent="div")
    anchor = next(tree.iter("a"))
    assert anchor.get("href") == link.href
    assert anchor.text_content() == HOSTILE


@pytest.mark.parametrize(("link", "expected"), [
    (Link("Kazakhstan", "/?country=KZ", 12345), ("Kazakhstan", "12,345", None)),
    (Link("Terrorism", "/", 0, active=True), ("Terrorism", "0", "true")),
    (Link("Central Asia", "/?region=central-asia"), ("Central Asia", None, None)),  # count not known yet
])
def test_facet_entries_show_name_count_and_whether_chosen(link: Link, expected: tuple[str, str | None, str | None],
                                                         ) -> None:
    item = lxml_html.fragment_fromstring(str(facet_items([link])))
    anchor = item.find("a")
    count = anchor.find("span[@class='n']")
    assert (anchor.find("span[@class='name']").text, None if count is None else count.text,
            anchor.get("aria-current")) == expected
    assert anchor.get("href") == link.href


def test_a_listed_post_links_its_page_and_shows_source_date_language_tags_and_summary() -> None:
    post = Post(published=datetime(2026, 12, 6, 0, 34, tzinfo=timezone(timedelta(hours=3))),
                countries=[Link("Kazakhstan", "/?country=KZ")], topics=[Link("Terrorism", "/?topic=terrorism")])
    tree = lxml_html.fragment_fromstring(str(post_list([post, Post(id=8)])))
    assert tree.tag == "ol" and tree.get("class") == "posts"
    first, second = tree.findall("li")
    assert first.find("article").get("aria-labelledby") == "post-7"
    heading = first.find("article/h3")
    assert (heading.get("id"), heading.find("a").get("href"), heading.text_content()) == (
        "post-7", "/posts/7", "Border talks")
    meta = first.find("article/p[@class='meta']")
    assert meta.find("span[@class='source']").text == "Window on Eurasia"
    assert (meta.find("time").get("datetime"), meta.find("time").text) == (
        "2026-12-05T21:34:00+00:00", "5 Dec 2026, 21:34 UTC")
    assert meta.find("span[@class='lang']").text == "en"
    assert meta.find("abbr") is None and meta.find("a") is None  # a date given; no story of several sources
    assert [a.get("href") for a in first.iter("a") if "chip" in (a.get("class") or "")] == [
        "/?country=KZ", "/?topic=terrorism"]
    assert first.find("article/p[@class='summary']").text == "Talks on the border resumed."
    assert second.find("article/h3/a").get("href") == "/posts/8"


@pytest.mark.parametrize(("post", "shown"), [
    (Post(estimated=True), "(date estimated)"),
    (Post(story_id=42, story_sources=3), "3 sources"),
    (Post(story_id=42, story_sources=1), None),  # a story only this source reported: no link
    (Post(source=None, lang=None, summary=""), None),
])
def test_a_listed_post_shows_an_estimated_date_and_its_story_only_when_they_apply(post: Post, shown: str | None,
                                                                                  ) -> None:
    item = lxml_html.fragment_fromstring(str(post_list([post]))).find("li")
    meta = item.find("article/p[@class='meta']")
    extra = [e.text_content() for e in meta if e.tag in ("abbr", "a")]
    assert extra == ([shown] if shown else [])
    if shown == "3 sources":
        assert meta.find("a").get("href") == "/stories/42"
    if not post.summary:
        assert item.find("article/p[@class='summary']") is None and meta.find("span") is None


def test_a_search_s_marks_are_kept_and_the_rest_escaped() -> None:
    marked = Markup("Troops at the <mark>border</mark> &amp; beyond")
    post = Post(title=marked, summary=marked, source=HOSTILE, lang="<b>", places=[Link(HOSTILE, '/?q="><b>')])
    out = str(post_list([post]))
    assert "<script>" not in out and "<b>" not in out
    item = lxml_html.fragment_fromstring(out).find("li")
    assert [m.text for m in item.iter("mark")] == ["border", "border"]
    assert item.find("article/h3/a").text_content() == "Troops at the border & beyond"
    assert item.find("article/p/span[@class='source']").text == HOSTILE
    assert item.find("article/p/span[@class='lang']").text == "<b>"
    chip = item.find("article/ul/li/a")
    assert (chip.text, chip.get("href")) == (HOSTILE, '/?q="><b>')
