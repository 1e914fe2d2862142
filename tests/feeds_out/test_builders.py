"""The pure builders, table-tested: a filter in words and as a canonical query, and each format's
document read back by feedparser (the JSON Feed by the project's own JSON Feed reader: feedparser 6.0
does not read JSON), the Atom one also validated against RFC 4287's RELAX NG schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import feedparser
import pytest
from lxml import etree

from aggregator.feeds_out import Category, Channel, Item, Names, Origin, canonical_query, describe, feed_links, render
from aggregator.feeds_out.describe import discovery_links
from aggregator.feeds_out.model import entry_id, xml_text
from aggregator.feeds_out.opml import Outline, build_opml
from aggregator.ingest.jsonfeed import read_json_feed
from aggregator.query import PostFilter, Vocabulary, multi_dict, parse_filter
from tests.feeds_out.conftest import RNG

VOCABULARY = Vocabulary(countries=frozenset({"KZ", "UZ", "AF", "RU"}), topics=frozenset({"terrorism", "cyber"}),
                        regions={"central-asia": frozenset({"KZ", "UZ"})})
NAMES = Names(countries={"KZ": "Kazakhstan", "UZ": "Uzbekistan", "AF": "Afghanistan", "RU": "Russia"},
              regions={"central-asia": "Central Asia"}, topics={"terrorism": "Terrorism", "cyber": "Cyber"},
              sources={7: "Steppe Watch"}, languages={"ru": "Russian"})


def f(query: str) -> PostFilter:
    from urllib.parse import parse_qsl

    return parse_filter(multi_dict(parse_qsl(query)), VOCABULARY)


@pytest.mark.parametrize(("query", "title"), [
    ("", "All posts"),
    ("country=KZ&topic=terrorism", "Kazakhstan · Terrorism"),
    ("topic=terrorism&country=kz", "Kazakhstan · Terrorism"),
    ("country=KZ,UZ", "Kazakhstan or Uzbekistan"),
    ("country=KZ&country=UZ&country=AF&match=all", "Kazakhstan, Uzbekistan and Afghanistan"),
    ("country=RU&role=primary", "Russia (primary)"),
    ("region=central-asia&topic=cyber", "Central Asia · Cyber"),
    ("q=border guards&source=7&lang=ru", "“border guards” · from Steppe Watch · in Russian"),
    ("source=9", "from source 9"),
    ("since=2025-01-10&until=2025-01-12", "since 2025-01-10 · before 2025-01-13"),
    ("since=2025-01-10T12:30:00Z", "since 2025-01-10 12:30 UTC"),
])
def test_title_describes_the_filter_in_words(query: str, title: str) -> None:
    assert describe(f(query), NAMES)[0] == title


@pytest.mark.parametrize(("query", "subtitle"), [
    ("country=KZ&topic=terrorism", "Regional security news: posts about Kazakhstan on terrorism, newest first."),
    ("country=RU&role=primary&q=drones", "Regional security news: posts mainly about Russia matching “drones”, "
                                         "newest first."),
    ("", "Regional security news: posts, newest first."),
])
def test_subtitle_is_a_sentence(query: str, subtitle: str) -> None:
    assert describe(f(query), NAMES)[1] == subtitle


@pytest.mark.parametrize(("query", "canonical"), [
    ("", ""),
    ("topic=terrorism&country=kz", "country=KZ&topic=terrorism"),
    ("country=UZ&country=kz,UZ", "country=KZ%2CUZ"),
    ("role=any&match=any&country=KZ", "country=KZ"),
    ("role=primary&match=all&country=KZ", "country=KZ&match=all&role=primary"),
    ("source=9,7&lang=RU", "lang=ru&source=7%2C9"),
    ("q=border guards", "q=border+guards"),
    ("until=2025-01-12&since=2025-01-10T05:00:00%2B05:00",
     "since=2025-01-10T00%3A00%3A00Z&until=2025-01-13T00%3A00%3A00Z"),
])
def test_canonical_query_is_one_spelling_per_filter(query: str, canonical: str) -> None:
    assert canonical_query(f(query)) == canonical
    assert canonical_query(f(canonical.replace("%2C", ",").replace("%3A", ":").replace("+", " "))) == canonical


def test_feed_links_and_discovery_links() -> None:
    links = feed_links("https://news.example/", f("topic=terrorism&country=KZ"), limit=20)
    assert links == {fmt: f"https://news.example/feeds/{fmt}?country=KZ&limit=20&topic=terrorism"
                     for fmt in ("atom", "rss", "json")}
    tags = discovery_links("https://news.example", f("country=KZ"), NAMES)
    assert tags[0] == {"rel": "alternate", "type": "application/atom+xml", "title": "Kazakhstan (ATOM)",
                       "href": "https://news.example/feeds/atom?country=KZ"}


T1, T2, T3 = (datetime(2025, 1, d, 9, 30, 15, tzinfo=UTC) for d in (10, 11, 12))
ITEMS = (
    Item(id=entry_id("tag:blogger.com,1999:blog-1.post-2"), title="Border <guards> & \x0bdrones", url="https://a.example/1",
         author="Paul Goble", published=T2, updated=T3, summary="Plain summary.", html="<p>Hello <b>world</b></p>",
         lang="en", origin=Origin("Window on Eurasia", "https://a.example/feed", "https://a.example/"),
         categories=(Category("KZ", "Kazakhstan", "https://news.example/api/v1/countries"),
                     Category("terrorism", "Terrorism", "https://news.example/api/v1/topics"))),
    Item(id=entry_id("https://b.example/2"), title="Без ссылки", url=None, author="unknown", published=T1, updated=T1,
         summary="", html="text only", lang="not a tag!"),
)
CHANNEL = Channel(id="urn:uuid:00000000-0000-5000-8000-000000000000", title="Kazakhstan · Terrorism",
                  subtitle="Regional security news: posts about Kazakhstan on terrorism, newest first.",
                  self_url="https://news.example/feeds/atom?country=KZ&topic=terrorism",
                  home_url="https://news.example/api/v1/posts?country=KZ&topic=terrorism",
                  alternates={"atom": "https://news.example/feeds/atom?country=KZ",
                              "rss": "https://news.example/feeds/rss?country=KZ",
                              "json": "https://news.example/feeds/json?country=KZ"},
                  updated=T3, items=ITEMS, version="0.1.0", ttl_minutes=5)


@pytest.mark.parametrize("fmt", ["atom", "rss"])
def test_xml_formats_round_trip_through_feedparser(fmt: str) -> None:
    parsed = feedparser.parse(render(fmt, CHANNEL))
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.feed.title == CHANNEL.title
    assert [e.id for e in parsed.entries] == [i.id for i in ITEMS]
    assert [e.title for e in parsed.entries] == ["Border <guards> & drones", "Без ссылки"]
    assert parsed.entries[0].link == "https://a.example/1"
    assert parsed.entries[0].published_parsed[:6] == (2025, 1, 11, 9, 30, 15)
    assert [(t.term, t.scheme) for t in parsed.entries[0].tags] == [
        ("KZ" if fmt == "atom" else "Kazakhstan", "https://news.example/api/v1/countries"),
        ("terrorism" if fmt == "atom" else "Terrorism", "https://news.example/api/v1/topics")]
    assert parsed.entries[0].author == "Paul Goble"
    assert parsed.entries[0].content[0].value == "<p>Hello <b>world</b></p>"
    self_links = [link.href for link in parsed.feed.links if link.rel == "self"]
    assert self_links == [CHANNEL.self_url]


def test_atom_validates_against_rfc4287_relax_ng() -> None:
    schema = etree.RelaxNG(etree.parse(str(RNG)))
    document = etree.fromstring(render("atom", CHANNEL))
    assert schema.validate(document), schema.error_log
    entry = document.find("{http://www.w3.org/2005/Atom}entry")
    assert entry is not None
    entry.remove(entry.find("{http://www.w3.org/2005/Atom}id"))  # the schema can fail: an entry without an id
    assert not schema.validate(document)


def test_atom_updated_and_source() -> None:
    parsed = feedparser.parse(render("atom", CHANNEL))
    first = parsed.entries[0]
    assert first.updated_parsed[:6] == (2025, 1, 12, 9, 30, 15)
    assert first.source.title == "Window on Eurasia"
    assert [link.href for link in first.links if link.rel == "via"] == ["https://a.example/"]
    assert not [link for link in parsed.entries[1].get("links", []) if link.rel == "alternate"]  # none invented


def test_json_feed_round_trip() -> None:
    body = render("json", CHANNEL)
    document = json.loads(body)
    assert document["version"] == "https://jsonfeed.org/version/1.1"
    assert document["feed_url"] == CHANNEL.self_url
    parsed = read_json_feed(body, url=CHANNEL.self_url)
    assert [e["id"] for e in parsed.entries] == [i.id for i in ITEMS]
    assert [e["title_detail"]["value"] for e in parsed.entries] == ["Border <guards> & \x0bdrones", "Без ссылки"]
    assert [e["link"] for e in parsed.entries] == ["https://a.example/1", ""]
    assert [t["term"] for t in parsed.entries[0]["tags"]] == ["Kazakhstan", "Terrorism"]
    assert document["items"][0]["tags"] == ["Kazakhstan", "Terrorism"]
    assert document["items"][0]["date_published"] == "2025-01-11T09:30:15Z"
    assert "language" not in document["items"][1]  # "not a tag!" is not a language tag


def test_text_that_xml_cannot_carry_is_dropped() -> None:
    assert xml_text("a\x00b\x0bc\ud800d\ufffee\tf") == "abcde\tf"


def test_empty_feed_is_valid() -> None:
    empty = Channel(**{**{k: getattr(CHANNEL, k) for k in CHANNEL.__slots__}, "items": ()})  # type: ignore[arg-type]
    for fmt in ("atom", "rss"):
        assert not feedparser.parse(render(fmt, empty)).bozo
    assert etree.RelaxNG(etree.parse(str(RNG))).validate(etree.fromstring(render("atom", empty)))


def test_opml_lists_feeds() -> None:
    body = build_opml("Saved feeds", [Outline("KZ & terror", "https://n.example/feeds/kz.atom",
                                              "https://n.example/api/v1/posts?country=KZ")], T1)
    outline = etree.fromstring(body).find("body/outline")
    assert outline is not None and outline.get("xmlUrl") == "https://n.example/feeds/kz.atom"
    assert outline.get("title") == "KZ & terror"
