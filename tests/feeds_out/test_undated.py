"""An entry whose source gave no date: no invented publication date in any format, Atom's required
<updated> carries when it was first seen, JSON Feed says the date is an estimate; and the served
feeds do so for posts stored from an undated feed item."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime

import feedparser
import pytest
from lxml import etree

from aggregator.config import Settings
from aggregator.db import Database
from aggregator.feeds_out import Channel, Item, entry_id, render
from aggregator.runtime import build_web_app
from tests.api.conftest import DATA
from tests.feeds_out.conftest import RNG
from tests.support.feedserver import FeedServer
from tests.support.polling import serve_and_poll

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SEEN = datetime(2025, 1, 11, 9, 30, 15, tzinfo=UTC)
UNDATED = Item(id=entry_id("https://c.example/undated"), title="Undated", url="https://c.example/undated",
               author="unknown", published=None, updated=SEEN, summary="s", html="<p>h</p>")
CHANNEL = Channel(id="urn:uuid:00000000-0000-5000-8000-000000000001", title="All", subtitle="All posts",
                  self_url="https://news.example/feeds/atom", home_url="https://news.example/api/v1/posts",
                  alternates={}, updated=SEEN, items=(UNDATED,))


def test_atom_has_only_updated_and_stays_valid() -> None:
    document = render("atom", CHANNEL)
    assert etree.RelaxNG(etree.parse(str(RNG))).validate(etree.fromstring(document))
    [entry] = feedparser.parse(document).entries
    assert "published" not in entry and entry.updated_parsed[:6] == (2025, 1, 11, 9, 30, 15)


def test_rss_has_no_pub_date() -> None:
    [entry] = feedparser.parse(render("rss", CHANNEL)).entries
    assert "published" not in entry and b"pubDate" not in render("rss", CHANNEL)


def test_json_feed_marks_the_estimate() -> None:
    [item] = json.loads(render("json", CHANNEL))["items"]
    assert "date_published" not in item and item["date_modified"] == "2025-01-11T09:30:15Z"
    assert item["_aggregator"]["date_estimated"] is True


@pytest.mark.parametrize("fmt", ["atom", "rss", "json"])
def test_served_feeds_of_an_undated_item(db: Database, settings: Settings, feed_server: FeedServer, fmt: str) -> None:
    [outcome] = serve_and_poll(db, settings, feed_server, {"/notes.rss": (DATA / "undated.rss").read_bytes()}).values()
    assert outcome.outcome == "ok", outcome.describe()
    with db.connection() as conn:
        seen = {t: s for t, s in conn.execute("SELECT title, first_seen_at FROM posts WHERE published_at IS NULL")}
    assert len(seen) == 2
    with TestClient(build_web_app(settings, db)) as client:
        response = client.get(f"/feeds/{fmt}")
    assert response.status_code == 200, response.text
    if fmt == "json":
        items = {i["title"]: i for i in response.json()["items"]}
        for title in seen:
            assert "date_published" not in items[title] and items[title]["_aggregator"]["date_estimated"] is True
        assert all("date_published" in i for t, i in items.items() if t not in seen)
        return
    entries = {e.title: e for e in feedparser.parse(response.content).entries}
    for title, first_seen in seen.items():
        assert "published" not in entries[title]
        if fmt == "atom":
            assert entries[title].updated_parsed[:6] == first_seen.astimezone(UTC).timetuple()[:6]
    assert all("published" in e for t, e in entries.items() if t not in seen)
