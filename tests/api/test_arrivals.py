"""Keyset pages stay exact while the worker stores new posts between two page requests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aggregator.config import Settings
from aggregator.db import Database
from aggregator.runtime import build_web_app
from aggregator.web.rollup import refresh_once
from tests.api.conftest import (
    DATA,
    FEEDS,
    Corpus,
    TestClient,
    add_sources,
    expected_facets,
    facets_of,
    ids,
    poll,
    serve_fixtures,
)
from tests.support.feedserver import FeedServer


@pytest.fixture
def live(db: Database, settings: Settings, feed_server: FeedServer) -> Iterator[Corpus]:
    app = build_web_app(settings, db)
    serve_fixtures(feed_server)
    sources = add_sources(db, feed_server, list(FEEDS))
    poll(db, settings, [feed_server.url(p) for p in FEEDS])
    with TestClient(app) as client:
        yield Corpus(db, client, feed_server, settings, sources)


def publish_later_items(corpus: Corpus) -> None:
    """Kabul Wire publishes two new posts and one with an old date; the worker picks them up."""
    base = (DATA / "kabul_wire.rss").read_bytes()
    later = (DATA / "kabul_wire_later.items.xml").read_bytes()
    corpus.server.serve("/kabul-wire.rss", base.replace(b"</channel>", later + b"</channel>"))
    poll(corpus.db, corpus.settings, [corpus.server.url("/kabul-wire.rss")])


@pytest.mark.parametrize("params", [{}, {"country": "AF"}, {"region": "central-asia", "role": "any"}])
def test_no_post_skipped_or_repeated_while_new_posts_arrive(live: Corpus, params: dict[str, str]) -> None:
    before = [p for p in live.posts()]
    page = live.client.get("/api/v1/posts", params={**params, "limit": 3}).json()
    seen = ids(page)
    publish_later_items(live)
    arrived = {p.id for p in live.posts()} - {p.id for p in before}
    assert len(arrived) == 3
    while page["next_cursor"]:
        page = live.client.get("/api/v1/posts", params={**params, "limit": 3, "cursor": page["next_cursor"]}).json()
        seen.extend(ids(page))
    assert len(seen) == len(set(seen)), "a post was repeated"
    after = {p.id: p for p in live.posts()}
    expected_before = [p.id for p in before if p.id in set(ids(live.client.get(
        "/api/v1/posts", params={**params, "limit": 100}).json()))]
    assert set(expected_before) <= set(seen), "a post was skipped"
    keys = [(after[i].published, i) for i in seen]
    assert keys == sorted(keys, reverse=True), "pages are not in one consistent order"
    newer = {i for i in arrived if after[i].published > before[0].published}
    assert newer and not newer & set(seen), "posts newer than the first page belong to a fresh first page"
    fresh = ids(live.client.get("/api/v1/posts", params={**params, "limit": 100}).json())
    assert set(fresh) == set(seen) | {i for i in newer if i in fresh}


def test_facets_stay_exact_when_posts_arrive_after_the_rollup_refresh(live: Corpus) -> None:
    assert refresh_once(live.db) == 1
    before = facets_of(live, {"country": "AF"})
    publish_later_items(live)
    after = facets_of(live, {"country": "AF"})
    assert after == expected_facets([p for p in live.posts() if "AF" in p.countries])
    assert after != before
