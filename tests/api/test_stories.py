"""/api/v1/stories and story_id on posts: reports of one event from several feeds, in two languages,
served as one story with its posts and sources in order; merged ids redirect."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aggregator.db import Database
from aggregator.db import stories as stories_db
from aggregator.runtime import build_web_app
from tests.api.conftest import TestClient, add_sources, api_settings, poll, truncate
from tests.stories import samples
from tests.stories.samples import rss
from tests.support.feedserver import FeedServer

NOW = datetime.now(UTC).replace(microsecond=0)
FEEDS = {
    "/en.rss": [("derbent-en", samples.DERBENT_EN, 6), ("kabul", samples.KABUL_EN, 5),
                ("airport", samples.AIRPORT_EN, 4)],
    "/ru.rss": [("derbent-ru", samples.DERBENT_RU, 3), ("nalchik", samples.NALCHIK_RU, 2)],
}


def feed(items: list[tuple[str, tuple[str, str], int]], title: str) -> bytes:
    """An RSS feed of reports, each dated its hours before NOW."""
    return rss(*((slug, report, NOW - timedelta(hours=hours)) for slug, report, hours in items), title=title)


@pytest.fixture(scope="module")
def api(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Database, TestClient]]:
    settings = api_settings(database_url, Path(tmp_path_factory.mktemp("stories")))
    with Database(database_url, max_size=6) as db, FeedServer() as server:
        truncate(db)
        app = build_web_app(settings, db)
        for path, items in FEEDS.items():
            server.serve(path, feed(items, path.strip("/")), headers={"Content-Type": "application/rss+xml"})
        add_sources(db, server, list(FEEDS))
        poll(db, settings, [server.url(p) for p in FEEDS])
        with TestClient(app) as client:
            yield db, client
        truncate(db)


def by_slug(client: TestClient) -> dict[str, dict]:
    items = client.get("/api/v1/posts", params={"limit": 50}).json()["items"]
    return {p["url"].rsplit("/", 1)[-1]: p for p in items}


def test_posts_carry_their_story_and_its_source_count(api: tuple[Database, TestClient]) -> None:
    posts = by_slug(api[1])
    assert posts["derbent-en"]["story_id"] == posts["derbent-ru"]["story_id"] is not None
    assert posts["derbent-en"]["story_sources"] == 2
    assert len({p["story_id"] for p in posts.values()}) == 4
    detail = api[1].get(f"/api/v1/posts/{posts['derbent-ru']['id']}").json()
    assert detail["story_id"] == posts["derbent-en"]["story_id"]


@pytest.mark.parametrize(("params", "expected"), [
    ({}, ["nalchik", "derbent-en", "airport", "kabul"]),           # latest activity first
    ({"min_sources": 2}, ["derbent-en"]),
    ({"country": "AF"}, ["kabul"]),
    ({"lang": "ru"}, ["nalchik", "derbent-en"]),                    # a story with a Russian post
    ({"q": "synagogue"}, ["derbent-en"]),
])
def test_stories_take_the_post_filters(api: tuple[Database, TestClient], params: dict, expected: list[str]) -> None:
    posts = by_slug(api[1])
    story = {p["story_id"]: slug for slug, p in reversed(list(posts.items()))}
    story[posts["derbent-en"]["story_id"]] = "derbent-en"
    response = api[1].get("/api/v1/stories", params=params)
    assert response.status_code == 200, response.text
    assert [story[s["id"]] for s in response.json()["items"]] == expected


def test_the_story_list_titles_each_story_in_the_preferred_language(api: tuple[Database, TestClient]) -> None:
    """The one language filtered on, else Accept-Language's first choice; a story without a post in
    that language keeps its first post's title."""
    story = by_slug(api[1])["derbent-en"]["story_id"]

    def titles(params: dict, headers: dict | None = None) -> dict[int, str]:
        response = api[1].get("/api/v1/stories", params=params, headers=headers or {})
        assert response.status_code == 200 and "Accept-Language" in response.headers["vary"]
        return {s["id"]: s["title"] for s in response.json()["items"]}

    assert titles({})[story] == samples.DERBENT_EN[0]
    assert titles({"lang": "ru"})[story] == samples.DERBENT_RU[0]
    assert titles({}, {"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.8"})[story] == samples.DERBENT_RU[0]
    assert titles({}, {"Accept-Language": "en;q=0.5, ru;q=0.9"})[story] == samples.DERBENT_RU[0]
    assert titles({}, {"Accept-Language": "en"})[story] == samples.DERBENT_EN[0]
    by_title = titles({}, {"Accept-Language": "ru"})
    kabul = by_slug(api[1])["kabul"]["story_id"]
    assert by_title[kabul] == samples.KABUL_EN[0]  # no Russian post: its own title


def test_stories_page_with_a_cursor(api: tuple[Database, TestClient]) -> None:
    seen, cursor = [], None
    while True:
        body = api[1].get("/api/v1/stories", params={"limit": 1} | ({"cursor": cursor} if cursor else {})).json()
        seen += [s["id"] for s in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 4


def test_one_story_with_its_posts_and_sources_in_order(api: tuple[Database, TestClient]) -> None:
    story_id = by_slug(api[1])["derbent-en"]["story_id"]
    body = api[1].get(f"/api/v1/stories/{story_id}").json()
    assert (body["posts"], body["sources"], body["merged_from"]) == (2, 2, None)
    assert [p["url"].rsplit("/", 1)[-1] for p in body["post_list"]] == ["derbent-en", "derbent-ru"]
    assert [s["url"].rsplit("/", 1)[-1] for s in body["source_list"]] == ["en.rss", "ru.rss"]
    assert body["title"] == samples.DERBENT_EN[0]
    assert api[1].get(f"/api/v1/stories/{story_id}", params={"lang": "ru"}).json()["title"] == samples.DERBENT_RU[0]


def test_a_merged_story_redirects_to_the_survivor(api: tuple[Database, TestClient]) -> None:
    db, client = api
    posts = by_slug(client)
    survivor, merged = posts["airport"]["story_id"], posts["nalchik"]["story_id"]
    with db.connection() as conn:
        stories_db.merge_many(conn, {merged: survivor})
        stories_db.refresh(conn, [survivor])
    try:
        body = client.get(f"/api/v1/stories/{merged}").json()
        assert (body["id"], body["merged_from"], body["posts"]) == (survivor, merged, 2)
        assert merged not in [s["id"] for s in client.get("/api/v1/stories").json()["items"]]
    finally:
        with db.connection() as conn:
            conn.execute("UPDATE post_story_keys k SET story_id = %s FROM posts p "
                         "WHERE p.id = k.post_id AND p.url LIKE %s", (merged, "%/nalchik"))
            conn.execute("UPDATE stories SET merged_into = NULL WHERE id = %s", (merged,))
            stories_db.refresh(conn, [survivor, merged])


@pytest.mark.parametrize(("path", "status"), [
    ("/api/v1/stories/999999", 404),
    ("/api/v1/stories?min_sources=0", 400),
    ("/api/v1/stories?cursor=bad", 400),
    ("/api/v1/stories?sort=published", 400),
])
def test_bad_requests(api: tuple[Database, TestClient], path: str, status: int) -> None:
    assert api[1].get(path).status_code == status
