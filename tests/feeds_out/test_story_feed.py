"""group=story: one feed entry per story, whose id stays while reports join and whose `updated` moves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import feedparser
import pytest

from aggregator.db import Database
from aggregator.runtime import build_web_app
from tests.api.conftest import TestClient, add_sources, api_settings, poll, truncate
from tests.api.test_stories import FEEDS, feed
from tests.stories import samples
from tests.support.feedserver import FeedServer

LATE = {"/late.rss": [("derbent-late", ("Dagestan attacks: death toll in Derbent and Makhachkala rises",
                                        samples.DERBENT_EN[1].replace("Nineteen", "Twenty-two")
                                        + " " + samples.filler("vz")), 1)]}


@pytest.fixture
def site(database_url: str, tmp_path: Path) -> Iterator[tuple[Database, TestClient, FeedServer]]:
    settings = api_settings(database_url, tmp_path, feeds_cache_entries=0)
    with Database(database_url, max_size=6) as db, FeedServer() as server:
        truncate(db)
        app = build_web_app(settings, db)
        for path, items in (FEEDS | LATE).items():
            server.serve(path, feed(items, path.strip("/")), headers={"Content-Type": "application/rss+xml"})
        add_sources(db, server, list(FEEDS))
        poll(db, settings, [server.url(p) for p in FEEDS])
        with TestClient(app) as client:
            yield db, client, server
        truncate(db)




def entries(client: TestClient, **params: str) -> list[feedparser.FeedParserDict]:
    response = client.get("/feeds/atom", params=params)
    assert response.status_code == 200, response.text
    return feedparser.parse(response.content).entries


def test_one_entry_per_story(site: tuple[Database, TestClient, FeedServer]) -> None:
    _, client, _ = site
    grouped = entries(client, group="story")
    assert len(entries(client)) == 5 and len(grouped) == 4
    derbent = [e for e in grouped if "Derbent" in e.title]
    assert len(derbent) == 1 and "2 reports from 2 sources" in derbent[0].summary
    assert "also reported by ru.rss" in derbent[0].summary


def test_the_entry_keeps_its_id_and_moves_its_updated_as_the_story_grows(
        site: tuple[Database, TestClient, FeedServer], database_url: str, tmp_path: Path) -> None:
    db, client, server = site
    with db.connection() as conn:  # the story's last change an hour ago, so a new one is visibly later
        conn.execute("UPDATE stories SET updated_at = updated_at - interval '1 hour'")
    [before] = [e for e in entries(client, group="story") if "Derbent" in e.title]
    add_sources(db, server, list(LATE))
    poll(db, api_settings(database_url, tmp_path), [server.url(p) for p in LATE])
    grouped = entries(client, group="story")
    [after] = [e for e in grouped if "Derbent" in e.title]
    assert len(grouped) == 4
    assert after.id == before.id
    assert after.updated_parsed > before.updated_parsed
    assert "3 reports from 3 sources" in after.summary


def test_group_must_be_story(site: tuple[Database, TestClient, FeedServer]) -> None:
    response = site[1].get("/feeds/atom", params={"group": "source"})
    assert response.status_code == 400 and "group" in response.text
