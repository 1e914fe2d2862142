"""HTTP caching of feeds: validators, 304s with empty bodies, and ETags that change exactly when a
matching post arrives (the listener drops rendered feeds when posts change)."""

from __future__ import annotations

from datetime import UTC, datetime

import feedparser
import pytest

from aggregator.feeds_out.model import entry_id
from aggregator.runtime import build_web_app
from aggregator.web.feed_cache import not_modified, variant_etag
from tests.api.conftest import DATA, TestClient, api_settings, poll
from tests.feeds_out.conftest import Site, stored
from tests.support.network import wait_for

LM = datetime(2025, 1, 12, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(("headers", "result"), [
    ({}, False),
    ({"if-none-match": '"abc"'}, True),
    ({"if-none-match": 'W/"abc"'}, True),
    ({"if-none-match": '"abc-gzip"'}, True),
    ({"if-none-match": '"x", "abc"'}, True),
    ({"if-none-match": "*"}, True),
    ({"if-none-match": '"abd"'}, False),
    ({"if-none-match": '"abd"', "if-modified-since": "Sun, 12 Jan 2025 15:00:00 GMT"}, False),  # INM decides
    ({"if-modified-since": "Sun, 12 Jan 2025 15:00:00 GMT"}, True),
    ({"if-modified-since": "Sun, 12 Jan 2025 14:59:59 GMT"}, False),
    ({"if-modified-since": "not a date"}, False),
])
def test_conditional_rules(headers: dict[str, str], result: bool) -> None:
    assert not_modified(headers, '"abc"', LM) is result


def test_gzip_variant_has_its_own_etag() -> None:
    assert variant_etag('"abc"', True) == '"abc-gzip"'
    assert variant_etag('"abc"', False) == '"abc"'


@pytest.mark.parametrize("fmt", ["atom", "rss", "json"])
def test_polling_twice_with_validators_gets_304_with_empty_body(live_site: Site, fmt: str) -> None:
    client = live_site.client
    first = client.get(f"/feeds/{fmt}", params={"country": "AF"})
    assert first.status_code == 200
    etag, last_modified = first.headers["etag"], first.headers["last-modified"]
    assert not etag.startswith("W/") and first.headers["cache-control"] == "public, max-age=300"
    for headers in ({"If-None-Match": etag}, {"If-Modified-Since": last_modified},
                    {"If-None-Match": etag, "If-Modified-Since": last_modified}):
        again = client.get(f"/feeds/{fmt}", params={"country": "AF"}, headers=headers)
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag
    plain = client.get(f"/feeds/{fmt}", params={"country": "AF"}, headers={"Accept-Encoding": "identity"})
    assert plain.headers["etag"] == etag.replace("-gzip", "") and plain.content == first.content


def publish_later_items(site: Site) -> None:
    base = (DATA / "kabul_wire.rss").read_bytes()
    later = (DATA / "kabul_wire_later.items.xml").read_bytes()
    site.server.serve("/kabul-wire.rss", base.replace(b"</channel>", later + b"</channel>"))
    poll(site.db, site.settings, [site.server.url("/kabul-wire.rss")])


def test_a_new_matching_post_changes_the_etag_and_comes_first(live_site: Site) -> None:
    client = live_site.client
    before_ids = {r.id for r in stored(live_site.db)}
    matching, other = client.get("/feeds/atom?country=AF"), client.get("/feeds/atom?country=KZ")
    everything = client.get("/feeds/atom").headers["etag"]
    publish_later_items(live_site)
    arrived = [r for r in stored(live_site.db) if r.id not in before_ids]
    assert arrived and all("AF" in r.countries and "KZ" not in r.countries for r in arrived)  # the oracle holds
    wait_for(lambda: client.get("/feeds/atom").headers["etag"] != everything, 10, what="the change signal")
    after = client.get("/feeds/atom?country=AF", headers={"If-None-Match": matching.headers["etag"]})
    assert after.status_code == 200 and after.headers["etag"] != matching.headers["etag"]
    newest = max(arrived, key=lambda r: (r.published, r.id))
    assert feedparser.parse(after.content).entries[0].id == entry_id(newest.dedup_key)
    unchanged = client.get("/feeds/atom?country=KZ", headers={"If-None-Match": other.headers["etag"]})
    assert unchanged.status_code == 304, "a post that does not match changed the feed's ETag"


def test_every_process_computes_the_same_etag_and_answers_304_without_the_cache(live_site: Site) -> None:
    settings = api_settings(live_site.settings.database_url or "", live_site.settings.data_dir,
                            feeds_max_entries=100, feeds_cache_entries=0)
    cached = live_site.client.get("/feeds/rss?topic=terrorism")
    with TestClient(build_web_app(settings, live_site.db)) as uncached:
        fresh = uncached.get("/feeds/rss?topic=terrorism")
        assert fresh.headers["etag"] == cached.headers["etag"] and fresh.content == cached.content
        again = uncached.get("/feeds/rss?topic=terrorism", headers={"If-None-Match": fresh.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
