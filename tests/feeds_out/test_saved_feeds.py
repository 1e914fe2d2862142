"""Saved feeds: a filter under a slug, served at /feeds/{slug}.atom|rss|json, listed as OPML."""

from __future__ import annotations

import feedparser
from lxml import etree

from tests.api.conftest import ADMIN_KEY
from tests.feeds_out.conftest import Site, clear_saved_feeds

KEY = {"X-API-Key": ADMIN_KEY}


def test_saved_feed_lifecycle(site: Site) -> None:
    clear_saved_feeds(site.db)
    client = site.client
    body = {"slug": "af-terror", "query": "topic=terrorism&country=af&role=any", "title": "Afghan terrorism"}
    assert client.post("/api/v1/saved-feeds", json=body).status_code == 401
    created = client.post("/api/v1/saved-feeds", json=body, headers=KEY)
    assert created.status_code == 201, created.text
    assert created.json()["query"] == "country=AF&topic=terrorism"
    assert created.json()["feeds"]["atom"] == "http://testserver/feeds/af-terror.atom"

    by_query = feedparser.parse(client.get("/feeds/atom?country=AF&topic=terrorism").content)
    saved = feedparser.parse(client.get("/feeds/af-terror.atom").content)
    assert not saved.bozo and saved.feed.title == "Afghan terrorism"
    assert [e.id for e in saved.entries] == [e.id for e in by_query.entries] and saved.entries
    assert [link.href for link in saved.feed.links if link.rel == "self"] == ["http://testserver/feeds/af-terror.atom"]
    for fmt in ("rss", "json"):
        assert client.get(f"/feeds/af-terror.{fmt}").status_code == 200
    etag = client.get("/feeds/af-terror.rss").headers["etag"]
    assert client.get("/feeds/af-terror.rss", headers={"If-None-Match": etag}).status_code == 304

    replaced = client.post("/api/v1/saved-feeds", json={**body, "query": "country=RU", "title": None}, headers=KEY)
    assert replaced.status_code == 200
    changed = client.get("/feeds/af-terror.rss", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and feedparser.parse(changed.content).feed.title == "Russian Federation"

    opml = etree.fromstring(client.get("/feeds/saved.opml").content)
    assert [o.get("xmlUrl") for o in opml.iter("outline")] == ["http://testserver/feeds/af-terror.atom"]
    assert [s["slug"] for s in client.get("/api/v1/saved-feeds").json()] == ["af-terror"]

    assert client.delete("/api/v1/saved-feeds/af-terror").status_code == 401
    assert client.delete("/api/v1/saved-feeds/af-terror", headers=KEY).status_code == 204
    gone = client.get("/feeds/af-terror.atom")
    assert gone.status_code == 404 and gone.headers["content-type"].startswith("text/plain")


def test_saved_feed_refuses_what_the_feeds_refuse(site: Site) -> None:
    bad_query = site.client.post("/api/v1/saved-feeds", json={"slug": "x", "query": "country=QQ"}, headers=KEY)
    assert bad_query.status_code == 400 and bad_query.json()["error"]["details"] == {"parameter": "country"}
    bad_slug = site.client.post("/api/v1/saved-feeds", json={"slug": "Not OK", "query": ""}, headers=KEY)
    assert bad_slug.status_code == 400
