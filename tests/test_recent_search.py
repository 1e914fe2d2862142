"""The newest posts' search index (migrations 0023, 0025, 0026) against a real PostgreSQL: every write
to posts and to their sources keeps it equal to the posts dated at or after its floor (their words,
tags, language and sources), and pruning raises the floor."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from aggregator.db import Database, recent_search
from aggregator.db import posts as posts_db
from tests.support.database import reset
from tests.test_db import NOW, add_source, make_post


def state(conn: psycopg.Connection) -> tuple[set[int], set[int]]:
    """(posts in the index whose row, words, tags, language and sources are the post's, posts dated at
    or after the floor)."""
    held = {r[0] for r in conn.execute(
        "SELECT r.post_id FROM recent_search r JOIN posts p ON p.id = r.post_id"
        " WHERE (r.sort_at, r.search, r.lang, r.countries, r.primary_countries, r.topics, r.places, r.sources)"
        " IS NOT DISTINCT FROM (p.sort_at, p.search, p.lang, p.countries, p.primary_countries, p.topics, p.places,"
        "  (SELECT coalesce(array_agg(ps.source_id ORDER BY ps.source_id), '{}') FROM post_sources ps"
        "   WHERE ps.post_id = p.id))")}
    assert conn.execute("SELECT count(*) FROM recent_search").fetchone() == (len(held),), "a stale row"
    due = {r[0] for r in conn.execute(
        "SELECT id FROM posts WHERE sort_at >= (SELECT floor FROM recent_search_floor)")}
    return held, due


def ids_by_hour(conn: psycopg.Connection) -> dict[int, int]:
    """Post id by its make_post number (hours before NOW)."""
    return {int(url.rsplit("/", 1)[1]): pid for pid, url in conn.execute("SELECT id, url FROM posts")}


def test_every_write_keeps_the_newest_posts_index_and_pruning_raises_its_floor(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recent_search, "WINDOW", 3)
    sid = add_source(db, "https://example.org/feed")
    with db.connection() as conn:
        assert conn.execute("SELECT floor::text FROM recent_search_floor").fetchone() == ("-infinity",)
        posts_db.upsert_for_source(conn, sid, [make_post(n) for n in range(1, 7)], NOW)
        held, due = state(conn)
        assert held == due and len(held) == 6  # before a first prune, every post
        assert recent_search.prune(conn) == 3
        by_hour = ids_by_hour(conn)
        held, due = state(conn)
        assert held == due == {by_hour[1], by_hour[2], by_hour[3]}
        assert recent_search.prune(conn) == 0  # nothing newer: the floor stays
        assert conn.execute("SELECT sources FROM recent_search WHERE post_id = %s", [by_hour[1]]).fetchone() == ([sid],)

        other = add_source(db, "https://example.net/feed")  # another outlet carries post 1, then is removed
        posts_db.upsert_for_source(conn, other, [make_post(1)], NOW)
        held, due = state(conn)
        assert held == due == {by_hour[1], by_hour[2], by_hour[3]}
        assert conn.execute("SELECT sources FROM recent_search WHERE post_id = %s", [by_hour[1]]).fetchone() == (
            sorted([sid, other]),)
        conn.execute("DELETE FROM sources WHERE id = %s", [other])
        held, due = state(conn)
        assert held == due == {by_hour[1], by_hour[2], by_hour[3]}

        posts_db.upsert_for_source(conn, sid, [  # new words; one post moved before the floor; two new posts
            make_post(2, text="Body 2 with drones", content_hash="h2b"),
            make_post(3, published_at=NOW - timedelta(hours=50), content_hash="h3b"),
            make_post(0, published_at=NOW + timedelta(hours=1)),
            make_post(40, published_at=NOW - timedelta(hours=40)),
        ], NOW)
        by_hour = ids_by_hour(conn)
        held, due = state(conn)
        assert held == due == {by_hour[0], by_hour[1], by_hour[2]}
        found = conn.execute("SELECT post_id FROM recent_search WHERE search @@ search_query('drones')").fetchall()
        assert found == [(by_hour[2],)]

        conn.execute("UPDATE posts SET topics = '{cyber}', countries = '{KZ}', primary_countries = '{KZ}',"
                     " places = '{almaty}' WHERE id = %s", [by_hour[0]])  # re-tagged
        conn.execute("UPDATE posts SET lang = 'ru' WHERE id = %s", [by_hour[2]])
        held, due = state(conn)
        assert held == due == {by_hour[0], by_hour[1], by_hour[2]}
        assert conn.execute("SELECT post_id FROM recent_search WHERE topics = '{cyber}'").fetchall() == [(by_hour[0],)]

        conn.execute("DELETE FROM posts WHERE id = %s", [by_hour[1]])
        held, due = state(conn)
        assert held == due == {by_hour[0], by_hour[2]}
        assert recent_search.prune(conn) == 0  # fewer than WINDOW above the floor: it never goes down

        reset(conn, "ingest")
        assert conn.execute("SELECT floor::text FROM recent_search_floor").fetchone() == ("-infinity",)
        assert conn.execute("SELECT count(*) FROM recent_search").fetchone() == (0,)


def test_a_rebuild_after_a_bulk_load_holds_the_newest_posts(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recent_search, "WINDOW", 2)
    sid = add_source(db, "https://example.org/feed")
    with db.connection() as conn:
        conn.execute("UPDATE recent_search_floor SET floor = 'infinity'")  # shut, as the benchmark's seed loads
        posts_db.upsert_for_source(conn, sid, [make_post(n) for n in range(1, 5)], NOW)
        assert conn.execute("SELECT count(*) FROM recent_search").fetchone() == (0,)
        recent_search.rebuild(conn)
        by_hour = ids_by_hour(conn)
        held, due = state(conn)
        assert held == due == {by_hour[1], by_hour[2]}
