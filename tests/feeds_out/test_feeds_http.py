"""GET /feeds/atom|rss|json on posts ingested through the real pipeline: each document read back and
compared with the stored rows, plain-text errors, and the self link."""

from __future__ import annotations

import json
from collections.abc import Callable

import feedparser
import pytest
from lxml import etree

from aggregator.feeds_out.model import entry_id, utc
from aggregator.ingest.jsonfeed import read_json_feed
from tests.feeds_out.conftest import RNG, Row, Site, stored

CA = {"KZ", "KG", "TJ", "TM", "UZ"}
FILTERS: list[tuple[dict[str, str], Callable[[Row], bool]]] = [
    ({}, lambda r: True),
    ({"country": "AF", "topic": "terrorism"}, lambda r: "AF" in r.countries and "terrorism" in r.topics),
    ({"topic": "terrorism", "country": "af", "limit": "2"}, lambda r: "AF" in r.countries and "terrorism" in r.topics),
    ({"region": "central-asia", "role": "primary"}, lambda r: bool(CA & set(r.primary))),
    ({"lang": "ru"}, lambda r: r.lang == "ru"),
    ({"country": "MN"}, lambda r: "MN" in r.countries),  # nothing matches: an empty, valid feed
]
SCHEMA = etree.RelaxNG(etree.parse(str(RNG)))


def expected(site: Site, params: dict[str, str], keep: Callable[[Row], bool]) -> list[Row]:
    rows = stored(site.db, keep)
    return rows[: int(params.get("limit", site.settings.feeds_default_entries))]


@pytest.mark.parametrize(("params", "keep"), FILTERS)
@pytest.mark.parametrize("fmt", ["atom", "rss"])
def test_xml_feed_round_trips(site: Site, fmt: str, params: dict[str, str], keep: Callable[[Row], bool]) -> None:
    response = site.client.get(f"/feeds/{fmt}", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith({"atom": "application/atom+xml",
                                                         "rss": "application/rss+xml"}[fmt])
    parsed = feedparser.parse(response.content)
    assert not parsed.bozo, parsed.get("bozo_exception")
    rows = expected(site, params, keep)
    assert [e.id for e in parsed.entries] == [entry_id(r.dedup_key) for r in rows]
    assert [e.title for e in parsed.entries] == [r.title for r in rows]
    assert [e.get("link") for e in parsed.entries] == [r.url for r in rows]
    assert [e.published_parsed[:6] for e in parsed.entries] == [utc(r.published).timetuple()[:6] for r in rows]
    taxonomy = site.client.app.state.api.taxonomy  # type: ignore[attr-defined]
    countries, topics = dict(taxonomy.countries), dict(taxonomy.topics)
    for entry, row in zip(parsed.entries, rows, strict=True):
        terms = [t.term for t in entry.get("tags", [])]
        codes = [*row.countries, *row.topics]
        assert terms == (codes if fmt == "atom" else [countries.get(c) or topics.get(c) for c in codes])
    if fmt == "atom":
        assert SCHEMA.validate(etree.fromstring(response.content)), SCHEMA.error_log
        for entry, row in zip(parsed.entries, rows, strict=True):
            assert entry.updated_parsed[:6] == utc(row.updated or row.published).timetuple()[:6]


@pytest.mark.parametrize(("params", "keep"), FILTERS)
def test_json_feed_round_trips(site: Site, params: dict[str, str], keep: Callable[[Row], bool]) -> None:
    response = site.client.get("/feeds/json", params=params)
    assert response.status_code == 200, response.text
    document = json.loads(response.content)
    assert document["version"] == "https://jsonfeed.org/version/1.1"
    parsed = read_json_feed(response.content, url="http://testserver/feeds/json")
    rows = expected(site, params, keep)
    assert [e["id"] for e in parsed.entries] == [entry_id(r.dedup_key) for r in rows]
    assert [e["title_detail"]["value"] for e in parsed.entries] == [r.title for r in rows]
    assert [e["published_parsed"] for e in parsed.entries] == [utc(r.published) for r in rows]
    assert [[c["term"] for c in item["_aggregator"]["categories"]] for item in document["items"]] == [
        [*r.countries, *r.topics] for r in rows]


def test_title_and_canonical_self_link(site: Site) -> None:
    parsed = feedparser.parse(site.client.get("/feeds/atom?topic=terrorism&country=af&role=any").content)
    assert parsed.feed.title == "Afghanistan · Terrorism"
    links = {(link.rel, link.type): link.href for link in parsed.feed.links}
    assert links[("self", "application/atom+xml")] == "http://testserver/feeds/atom?country=AF&topic=terrorism"
    assert links[("alternate", "application/rss+xml")] == "http://testserver/feeds/rss?country=AF&topic=terrorism"
    assert links[("alternate", "application/json")] == "http://testserver/api/v1/posts?country=AF&topic=terrorism"


def test_entry_ids_are_the_same_in_every_format_and_every_poll(site: Site) -> None:
    atom = [e.id for e in feedparser.parse(site.client.get("/feeds/atom").content).entries]
    rss = [e.id for e in feedparser.parse(site.client.get("/feeds/rss").content).entries]
    items = json.loads(site.client.get("/feeds/json").content)["items"]
    assert atom == rss == [i["id"] for i in items]
    assert len(set(atom)) == len(atom) == len(stored(site.db))


@pytest.mark.parametrize(("query", "message"), [
    ("country=QQ", "country: unknown code 'QQ'"),
    ("contry=KZ", "contry: unknown parameter"),
    ("limit=0", "limit: must be between 1 and 100"),
    ("limit=101", "limit: must be between 1 and 100"),
    ("since=yesterday", "since: not an ISO 8601 date"),
    ("cursor=abc", "cursor: unknown parameter"),
    ("q=%00", "q: contains control characters"),
    ("since=2025-02-01&until=2025-01-01", "until: must be later than since"),
])
@pytest.mark.parametrize("fmt", ["atom", "rss", "json"])
def test_bad_parameters_answer_400_in_plain_text(site: Site, fmt: str, query: str, message: str) -> None:
    response = site.client.get(f"/feeds/{fmt}?{query}")
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text.startswith(message), response.text


@pytest.mark.parametrize(("path", "status"), [
    ("/feeds/nothing-here.atom", 404), ("/feeds/x.html", 400), ("/feeds/UPPER.atom", 400)])
def test_unknown_or_malformed_saved_feed_is_plain_text(site: Site, path: str, status: int) -> None:
    response = site.client.get(path)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/plain")
