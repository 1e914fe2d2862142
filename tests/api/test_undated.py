"""Items whose feed gives no date: stored without one, shown with an estimated date (their arrival),
ordered and paged by that arrival, which never changes when the feed is polled again."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from aggregator.config import Settings
from aggregator.db import Database
from aggregator.runtime import build_web_app
from tests.api.conftest import DATA, Site
from tests.support.feedserver import FeedServer
from tests.support.polling import serve_and_poll

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PATH = "/border-notes.rss"
NEWEST = "Tajik border guards report a clash on the Afghan frontier"
OLDEST = "Uzbek police detain traffickers in Termez"
DATED = {NEWEST: datetime(2025, 1, 12, 9, tzinfo=UTC), OLDEST: datetime(2025, 1, 10, 9, tzinfo=UTC)}
UNDATED = ("Undated note on Kyrgyz border posts", "Undated note on Kazakh customs")
ARRIVED = datetime(2025, 1, 11, 9, tzinfo=UTC)  # between the two dated items


class UndatedSite(Site):
    def poll(self, body: bytes) -> None:
        [outcome] = serve_and_poll(self.db, self.settings, self.server, {PATH: body}).values()
        assert outcome.outcome == "ok", outcome.describe()

    def stored(self) -> dict[str, tuple[datetime | None, datetime, datetime]]:
        """title -> (published_at, first_seen_at, sort_at) as stored."""
        with self.db.connection() as conn:
            rows = conn.execute("SELECT title, published_at, first_seen_at, sort_at FROM posts").fetchall()
        return {r[0]: (r[1], r[2], r[3]) for r in rows}


@pytest.fixture
def site(db: Database, settings: Settings, feed_server: FeedServer) -> Iterator[UndatedSite]:
    app = build_web_app(settings, db)
    with TestClient(app) as client:
        yield UndatedSite(db, client, feed_server, settings)


def posts(site: UndatedSite, **params: object) -> list[dict[str, object]]:
    response = site.client.get("/api/v1/posts", params={"limit": 100, **params})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def test_an_undated_item_is_stored_without_a_date_and_shown_as_estimated(site: UndatedSite) -> None:
    site.poll((DATA / "undated.rss").read_bytes())
    stored = site.stored()
    for title in UNDATED:
        published, first_seen, sort_at = stored[title]
        assert published is None, "no date is made up for it"
        assert sort_at == first_seen
    for title, date in DATED.items():
        assert stored[title][0] == stored[title][2] == date
    items = {i["title"]: i for i in posts(site)}
    for title in UNDATED:
        assert items[title]["date_estimated"] is True
        assert datetime.fromisoformat(str(items[title]["published"])) == stored[title][1]
        detail = site.client.get(f"/api/v1/posts/{items[title]['id']}").json()
        assert detail["date_estimated"] is True and detail["published"] == detail["first_seen"]
    assert all(items[title]["date_estimated"] is False for title in DATED)


def test_undated_items_are_ordered_and_paged_by_their_arrival_which_stays(site: UndatedSite) -> None:
    body = (DATA / "undated.rss").read_bytes()
    site.poll(body)
    with site.db.connection() as conn:  # as if the poll that first saw them ran on 11 January
        conn.execute("UPDATE posts SET first_seen_at = %(t)s", {"t": ARRIVED})
    titles = [str(i["title"]) for i in posts(site)]
    assert titles[0] == NEWEST and titles[-1] == OLDEST, titles
    assert set(titles[1:3]) == set(UNDATED), "between the dated posts, where they arrived"
    walked: list[str] = []
    cursor = None
    while True:  # a page of one at a time: the keyset cursor steps through the estimated dates too
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = site.client.get("/api/v1/posts", params=params).json()
        walked += [i["title"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert walked == titles and len(walked) == 4

    site.poll(body.replace(b"</channel>", b"<item><title>Later dated item</title><link>https://bordernotes.example/"
                                         b"later</link><pubDate>Mon, 13 Jan 2025 09:00:00 GMT</pubDate>"
                                         b"<description>x</description></item></channel>"))
    stored = site.stored()
    assert all(stored[t][0] is None and stored[t][2] == ARRIVED for t in UNDATED), "a later poll moves nothing"
    assert [str(i["title"]) for i in posts(site)][1:] == titles


def test_date_filters_and_day_facets_place_undated_posts_by_arrival(site: UndatedSite) -> None:
    site.poll((DATA / "undated.rss").read_bytes())
    with site.db.connection() as conn:
        conn.execute("UPDATE posts SET first_seen_at = %(t)s", {"t": ARRIVED})
    around = {str(i["title"]) for i in posts(site, since="2025-01-11", until="2025-01-11")}
    assert around == set(UNDATED)
    days = {v["key"]: v["count"] for v in site.client.get("/api/v1/facets").json()["day"]}
    assert days == {"2025-01-12": 1, "2025-01-11": 2, "2025-01-10": 1}


def test_the_reader_marks_an_estimated_date(site: UndatedSite) -> None:
    site.poll((DATA / "undated.rss").read_bytes())
    stream = site.client.get("/").text
    assert stream.count("(date estimated)") == len(UNDATED)
    [undated_id] = [p["id"] for p in posts(site) if p["title"] == UNDATED[0]]
    [dated_id] = [p["id"] for p in posts(site) if p["title"] == NEWEST]
    assert "(date estimated)" in site.client.get(f"/posts/{undated_id}").text
    assert "(date estimated)" not in site.client.get(f"/posts/{dated_id}").text
