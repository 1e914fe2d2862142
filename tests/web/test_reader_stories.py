"""The reader's story view and the "N sources" link on items, over the stories test corpus."""

from __future__ import annotations

from lxml import html as lxml_html

from aggregator.db import Database
from aggregator.db import stories as stories_db
from tests.api.conftest import TestClient
from tests.api.test_stories import api as api
from tests.api.test_stories import by_slug
from tests.stories import samples


def test_items_of_a_story_with_several_sources_link_to_it(api: tuple[Database, TestClient]) -> None:
    client = api[1]
    story_id = by_slug(client)["derbent-en"]["story_id"]
    page = lxml_html.fromstring(client.get("/").text)
    links = [(a.get("href"), a.text_content()) for a in page.cssselect("a.story-link")]
    assert links == [(f"/stories/{story_id}", "2 sources")] * 2  # the two reports, nothing else


def test_the_story_page_lists_its_reports_oldest_first(api: tuple[Database, TestClient]) -> None:
    client = api[1]
    posts = by_slug(client)
    response = client.get(f"/stories/{posts['derbent-en']['story_id']}")
    assert response.status_code == 200
    page = lxml_html.fromstring(response.text)
    assert page.cssselect("h1")[0].text_content() == samples.DERBENT_EN[0]
    assert [a.get("href") for a in page.cssselect("a.post-link")] == [
        f"/posts/{posts['derbent-en']['id']}", f"/posts/{posts['derbent-ru']['id']}"]
    assert [li.text_content() for li in page.cssselect("aside li")] == ["en.rss", "ru.rss"]
    in_russian = lxml_html.fromstring(client.get(f"/stories/{posts['derbent-en']['story_id']}?lang=ru").text)
    assert in_russian.cssselect("h1")[0].text_content() == samples.DERBENT_RU[0]
    post_page = lxml_html.fromstring(client.get(f"/posts/{posts['derbent-ru']['id']}").text)
    assert post_page.cssselect("a.story-link")[0].text_content() == "2 reports from 2 sources"


def test_a_merged_story_moves_and_an_unknown_one_is_not_found(api: tuple[Database, TestClient]) -> None:
    db, client = api
    posts = by_slug(client)
    survivor, merged = posts["airport"]["story_id"], posts["nalchik"]["story_id"]
    with db.connection() as conn:
        stories_db.merge_many(conn, {merged: survivor})
    try:
        moved = client.get(f"/stories/{merged}", follow_redirects=False)
        assert (moved.status_code, moved.headers["location"]) == (301, f"/stories/{survivor}")
    finally:
        with db.connection() as conn:
            conn.execute("UPDATE post_story_keys k SET story_id = %s FROM posts p "
                         "WHERE p.id = k.post_id AND p.url LIKE %s", (merged, "%/nalchik"))
            conn.execute("UPDATE stories SET merged_into = NULL WHERE id = %s", (merged,))
            stories_db.refresh(conn, [survivor, merged])
    assert client.get("/stories/999999").status_code == 404
