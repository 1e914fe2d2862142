"""Surge alerts over stored stories: a country with many more new stories today than in the four
weeks before fires; a backfill, a new source's first poll and a republished archive do not."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

import feedparser
import psycopg
import pytest

from aggregator.db import Database
from aggregator.db import sources as sources_db
from aggregator.db import stories as stories_db
from aggregator.db.sources import SourceSpec
from aggregator.runtime import build_web_app
from tests.api.conftest import Site, TestClient, api_settings, poll, truncate
from tests.stories import samples
from tests.support.feedserver import FeedServer

TODAY = datetime.combine(datetime.now(UTC).date(), time(), UTC)
SEEDS = ["bd", "fg", "lm", "np", "rs", "tv", "zb", "dg", "fl", "gm", "ln", "mp", "nr", "ps", "rt", "sv"]


def add_story(conn: psycopg.Connection, source_id: int, key: str, at: datetime, country: str, *,
              quiet: bool = False) -> int:
    """A one-post story as ingest stores it (rows written directly: weeks of history in a moment)."""
    row = conn.execute(
        """
        INSERT INTO posts (dedup_key, url, title, published_at, html, text, summary, content_hash, source_id,
                           countries, primary_countries, first_seen_at)
        VALUES (%(key)s, %(url)s, %(key)s, %(at)s, '', '', '', %(key)s, %(source)s, %(c)s, %(c)s, %(at)s)
        RETURNING id
        """,
        {"key": key, "url": f"http://example.org/{key}", "at": at, "source": source_id, "c": [country]},
    ).fetchone()
    assert row is not None
    conn.execute("INSERT INTO post_sources (post_id, source_id, guid) VALUES (%s, %s, %s)", (row[0], source_id, key))
    [story] = stories_db.next_ids(conn, stories_db.STORY_IDS, 1)
    [seq] = stories_db.next_ids(conn, stories_db.CLUSTER_ORDER, 1)
    stories_db.insert_stories(conn, [stories_db.NewStory(story, key, row[0], at)])
    stories_db.insert_keys(conn, [stories_db.NewKeys(row[0], story, at, seq, {}, quiet, [])])
    stories_db.refresh(conn, [story])
    return story


def kazakh_feed(start: int, count: int) -> bytes:
    items = "".join(
        f"<item><title>Kazakhstan report {SEEDS[i]} on {escape(samples.filler(SEEDS[i])[:30])}</title>"
        f"<link>http://example.org/kz{i}</link><guid>http://example.org/kz{i}</guid>"
        f"<pubDate>{format_datetime(TODAY + timedelta(minutes=5 + i))}</pubDate>"
        f"<description>Officials in Kazakhstan said {escape(samples.filler(SEEDS[i]))}</description></item>"
        for i in range(start, start + count))
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>KZ</title>'
            f"<link>http://example.org/</link><description>d</description>{items}</channel></rss>").encode()


@pytest.fixture(scope="module")
def site(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    settings = api_settings(database_url, Path(tmp_path_factory.mktemp("alerts")))
    with Database(database_url, max_size=6) as db, FeedServer() as server:
        truncate(db)
        app = build_web_app(settings, db)
        with db.connection() as conn:
            source, _ = sources_db.add(conn, SourceSpec("http://history.example/feed"), origin="cli",
                                       poll_interval=3600)
            for day in range(1, 29):
                for n in range(2):
                    for country in ("KG", "UZ"):
                        add_story(conn, source.id, f"{country}-{day}-{n}", TODAY - timedelta(days=day, hours=-9),
                                  country)
            for n in range(9):
                add_story(conn, source.id, f"KG-today-{n}", TODAY + timedelta(minutes=n), "KG")
            for n in range(20):  # a backfill's worth of Uzbek stories, dated today
                add_story(conn, source.id, f"UZ-backfill-{n}", TODAY + timedelta(minutes=n), "UZ", quiet=True)
        # A new source's first poll: eight Kazakh stories of today, all new to the database.
        server.serve("/kz.rss", kazakh_feed(0, 8), headers={"Content-Type": "application/rss+xml"})
        with db.connection() as conn:
            sources_db.add(conn, SourceSpec(server.url("/kz.rss")), origin="cli", poll_interval=3600)
        poll(db, settings, [server.url("/kz.rss")])
        with TestClient(app) as client:
            yield Site(db, client, server, settings)
        truncate(db)


def alerts(client: TestClient, **params: str) -> list[dict]:
    response = client.get("/api/v1/alerts", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_country_with_many_more_new_stories_than_usual_fires(site: Site) -> None:
    [kg] = alerts(site.client, country="KG")
    assert (kg["kind"], kg["code"], kg["stories"], kg["baseline"]) == ("country", "KG", 9, 2)
    assert len(kg["story_list"]) == 9 and kg["name"] == "Kyrgyzstan"


def test_a_backfill_and_a_first_poll_do_not_fire(site: Site) -> None:
    assert alerts(site.client, country="UZ") == []
    assert alerts(site.client, country="KZ") == []
    with site.db.connection() as conn:
        kazakh = conn.execute("SELECT count(DISTINCT k.story_id) FROM posts p "
                              "JOIN post_story_keys k ON k.post_id = p.id WHERE p.url LIKE '%/kz%'").fetchone()
    assert kazakh == (8,), "eight distinct stories, which would have been a surge"


def test_the_atom_feed_of_alerts(site: Site) -> None:
    feed = feedparser.parse(site.client.get("/feeds/alerts", params={"country": "KG"}).content)
    assert [e.title for e in feed.entries] == ["Surge: Kyrgyzstan: 9 new stories today (usually 2)"]
    assert feedparser.parse(site.client.get("/feeds/alerts", params={"country": "UZ"}).content).entries == []
    assert site.client.get("/api/v1/alerts", params={"country": "XX"}).status_code == 400


def test_the_new_source_s_next_poll_is_news(site: Site) -> None:
    """Last in the module: it changes the data. Eight more Kazakh stories on its second poll, where
    there were none in four weeks, are a surge."""
    site.server.serve("/kz.rss", kazakh_feed(0, 16), headers={"Content-Type": "application/rss+xml"})
    poll(site.db, site.settings, [site.server.url("/kz.rss")])
    [kz] = alerts(site.client, country="KZ")
    assert (kz["stories"], kz["baseline"]) == (8, 0)
