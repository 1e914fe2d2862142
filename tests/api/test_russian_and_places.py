"""Russian full-text search, detected languages and places in the API, on posts ingested by the real pipeline.

The fixture feeds (tests/data/api/) include a Russian one; the seed post (../shared/data/seed/) is served
as a feed of its own to check what region and place filters mean for the archetype post.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from aggregator.db import Database
from aggregator.runtime import build_web_app
from tests.api.conftest import Corpus, TestClient, add_sources, api_settings, ids, poll, truncate
from tests.support.feedserver import FeedServer


def search(corpus: Corpus, **params: object) -> list[str]:
    response = corpus.client.get("/api/v1/posts", params=params)
    assert response.status_code == 200, response.text
    return [item["title"] for item in response.json()["items"]]


def test_russian_search_finds_inflected_forms(corpus: Corpus) -> None:
    # the stored post says "В Казахстане задержаны": the russian configuration stems both to one lexeme
    assert any("Казахстане" in t for t in search(corpus, q="Казахстан"))
    assert any("Таджикистана" in t for t in search(corpus, q="Таджикистан"))
    assert any("Казахстане" in t for t in search(corpus, q="казахстана", lang="ru"))


def test_english_search_keeps_its_stemming(corpus: Corpus) -> None:
    posts = corpus.posts()
    militants = [p.title for p in posts if p.lang == "en" and "militants" in p.title.lower()]
    assert militants, "the fixture feeds have an English title with 'militants'"
    found = search(corpus, q="militant", lang="en")
    assert set(militants) <= set(found)
    assert all(not t.startswith("В ") for t in search(corpus, q="militant"))


def test_posts_show_detected_language_and_places(corpus: Corpus) -> None:
    items = corpus.client.get("/api/v1/posts", params={"limit": 100}).json()["items"]
    langs = {item["lang"] for item in items}
    assert {"ru", "en"} <= langs
    dagestan = [item for item in items if "Dagestan" in item["title"]]
    assert dagestan and all("dagestan" in item["places"] for item in dagestan)
    tags = [t for item in dagestan for t in item["tags"] if t["kind"] == "place"]
    assert tags and tags[0]["name"] == "Dagestan" and tags[0]["role"] is None
    detail = corpus.client.get(f"/api/v1/posts/{dagestan[0]['id']}").json()
    assert "dagestan" in detail["places"]
    assert any(e["phrase"] == "Dagestan" for t in detail["tags"] if t["kind"] == "place" for e in t["evidence"])


def test_places_and_regions_listing(corpus: Corpus) -> None:
    places = {p["code"]: p for p in corpus.client.get("/api/v1/places").json()}
    assert places["dagestan"]["within"] == "north-caucasus" and places["dagestan"]["country"] == "RU"
    assert places["dagestan"]["posts"] >= 1
    regions = {r["code"]: r for r in corpus.client.get("/api/v1/regions").json()}
    nc = {p.id for p in corpus.posts() if p.places & {"north-caucasus", "dagestan", "chechnya", "ingushetia"}}
    assert regions["north-caucasus"]["posts"] == len(nc)


def test_unknown_place_is_a_bad_parameter(corpus: Corpus) -> None:
    response = corpus.client.get("/api/v1/posts", params={"place": "atlantis"})
    assert response.status_code == 400
    assert "place" in response.text


@pytest.fixture(scope="module")
def seed_client(database_url: str, tmp_path_factory: pytest.TempPathFactory,
                shared_data: Path) -> Iterator[TestClient]:
    lines = (shared_data / "seed" / "window-on-eurasia-2022-01-07.txt").read_text("utf-8").splitlines()
    non_empty = [i for i, line in enumerate(lines) if line.strip()]
    title, text = lines[non_empty[1]].strip(), "\n".join(lines[non_empty[1] + 1:])
    feed = (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Window</title>'
            f"<link>https://w.example/</link><description>x</description><item><title>{escape(title)}</title>"
            f"<link>https://w.example/seed</link><guid>https://w.example/seed</guid>"
            f"<pubDate>Fri, 07 Jan 2022 10:00:00 GMT</pubDate><description>{escape(escape(text))}</description>"
            f"</item></channel></rss>").encode()
    settings = api_settings(database_url, tmp_path_factory.mktemp("seed"))
    with Database(database_url, max_size=4) as db, FeedServer() as server:
        truncate(db)
        app = build_web_app(settings, db)
        server.serve("/seed.rss", feed, headers={"Content-Type": "application/rss+xml"})
        add_sources(db, server, ["/seed.rss"])
        poll(db, settings, [server.url("/seed.rss")])
        with TestClient(app) as client:
            yield client
        truncate(db)


def test_seed_post_region_and_place_filters(seed_client: TestClient) -> None:
    def found(**params: object) -> list[int]:
        response = seed_client.get("/api/v1/posts", params=params)
        assert response.status_code == 200, response.text
        return ids(response.json())

    [seed] = found()
    assert found(region="north-caucasus") == [], "a post about Russia is not a post about the North Caucasus"
    assert found(place="fergana-valley") == [seed]
    assert found(region="fergana-valley") == [seed]
    assert found(region="central-asia") == [seed]
    item = seed_client.get(f"/api/v1/posts/{seed}").json()
    primary = {t["code"] for t in item["tags"] if t["kind"] == "country" and t["role"] == "primary"}
    assert {"KZ", "RU"} <= primary
    assert "fergana-valley" in item["places"] and item["lang"] == "en"
    assert {"terrorism", "military", "crime-trafficking", "corruption", "diplomacy"} <= {
        t["code"] for t in item["tags"] if t["kind"] == "topic"}


def test_filtered_feeds_take_place_and_region(corpus: Corpus) -> None:
    dagestan = {p.title for p in corpus.posts() if "dagestan" in p.places}
    response = corpus.client.get("/feeds/json", params={"place": "dagestan"})
    assert response.status_code == 200, response.text
    feed = response.json()
    assert {item["title"] for item in feed["items"]} == dagestan
    assert "Dagestan" in feed["title"]
    other = corpus.client.get("/feeds/json", params={"place": "chechnya"}).json()
    assert other["feed_url"] != feed["feed_url"], "the place is part of the feed's canonical address"
    regional = corpus.client.get("/feeds/json", params={"region": "north-caucasus"}).json()
    nc = {p.title for p in corpus.posts() if p.places & {"north-caucasus", "dagestan", "chechnya"}}
    assert {item["title"] for item in regional["items"]} == nc
