"""SQL for filtered feeds: the newest posts of a filter in two steps, and the change signal.

A feed is read in two steps inside one snapshot (the caller's REPEATABLE READ transaction):
`heads` selects the newest N matching posts with only the narrow columns that decide what the feed
says about them (id, changed_at, tags, source) — enough to compute the feed's validators and
answer a conditional request with 304 — and only when the body is needed does `bodies` read the
wide, TOASTed columns (html, summary) of those N posts.

The filter is the shared one (aggregator.db.post_filters.where), so feeds select exactly what the API does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from aggregator.db.post_filters import filtered, where
from aggregator.query import PostFilter

CHANGE_CHANNEL = "aggregator_feeds_changed"  # notified by the triggers of migration 0004


@dataclass(frozen=True, slots=True)
class FeedHead:
    """What identifies a post's appearance in a feed: any change to it changes the feed."""

    id: int
    changed_at: datetime
    countries: list[str]
    primary_countries: list[str]
    topics: list[str]
    source_id: int | None
    source_name: str | None
    source_url: str | None
    source_site_url: str | None
    story_id: int | None = None  # with group=story: the story this entry stands for
    story_updated: datetime | None = None
    story_sources: int | None = None
    story_posts: int | None = None


@dataclass(frozen=True, slots=True)
class FeedBody:
    id: int
    dedup_key: str
    title: str
    url: str | None
    author: str | None
    published_at: datetime | None  # NULL: the feed gave no date
    first_seen_at: datetime
    updated_at: datetime | None
    summary: str
    html: str
    lang: str | None


def heads(conn: psycopg.Connection, post_filter: PostFilter, limit: int) -> list[FeedHead]:
    """The newest `limit` matching posts, newest first (the API's order: sort_at, then id)."""
    condition, params = where(post_filter)
    statement = sql.SQL("""
        SELECT p.id, p.changed_at, p.countries, p.primary_countries, p.topics,
               s.id AS source_id, coalesce(s.name, s.title, s.url) AS source_name,
               s.url AS source_url, s.site_url AS source_site_url
        FROM posts p LEFT JOIN sources s ON s.id = p.source_id
        WHERE {condition}
        ORDER BY p.sort_at DESC, p.id DESC
        LIMIT %(limit)s
    """).format(condition=condition)
    return filtered(conn.cursor(row_factory=class_row(FeedHead)), statement, {**params, "limit": limit}).fetchall()


def story_heads(conn: psycopg.Connection, post_filter: PostFilter, limit: int) -> list[FeedHead]:
    """One head per story with a matching post, latest activity first: the story's first post,
    with the story's id, its last change and its counts (what makes the entry change as it grows)."""
    condition, params = where(post_filter)
    statement = sql.SQL("""
        SELECT p.id, p.changed_at, p.countries, p.primary_countries, p.topics,
               s.id AS source_id, coalesce(s.name, s.title, s.url) AS source_name,
               s.url AS source_url, s.site_url AS source_site_url,
               st.id AS story_id, st.updated_at AS story_updated, st.source_count AS story_sources,
               st.post_count AS story_posts
        FROM stories st
        JOIN posts p ON p.id = st.first_post_id
        LEFT JOIN sources s ON s.id = p.source_id
        WHERE st.merged_into IS NULL
          AND EXISTS (SELECT 1 FROM post_story_keys k JOIN posts p ON p.id = k.post_id
                      WHERE k.story_id = st.id AND {condition})
        ORDER BY st.last_seen_at DESC, st.id DESC
        LIMIT %(limit)s
    """).format(condition=condition)
    return filtered(conn.cursor(row_factory=class_row(FeedHead)), statement, {**params, "limit": limit}).fetchall()


def story_sources(conn: psycopg.Connection, story_ids: Sequence[int]) -> dict[int, list[str]]:
    """The names of each story's sources in the order they reported it."""
    rows = conn.execute(
        """
        SELECT k.story_id, coalesce(s.name, s.title, s.url)
        FROM post_story_keys k JOIN posts p ON p.id = k.post_id
             JOIN post_sources ps ON ps.post_id = p.id JOIN sources s ON s.id = ps.source_id
        WHERE k.story_id = ANY(%(ids)s)
        ORDER BY k.story_id, p.sort_at, p.id, ps.first_seen_at
        """,
        {"ids": list(story_ids)},
    ).fetchall()
    found: dict[int, list[str]] = {}
    for story_id, name in rows:
        names = found.setdefault(int(story_id), [])
        if name not in names:
            names.append(name)
    return found


def bodies(conn: psycopg.Connection, post_ids: Sequence[int]) -> dict[int, FeedBody]:
    cur = conn.cursor(row_factory=class_row(FeedBody))
    rows = cur.execute(
        """
        SELECT id, dedup_key, title, url, author, published_at, first_seen_at, updated_at, summary, html, lang
        FROM posts WHERE id = ANY(%(ids)s)
        """,
        {"ids": list(post_ids)},
    ).fetchall()
    return {row.id: row for row in rows}


def listen_for_changes(url: str, on_change: Callable[[], None], on_ready: Callable[[], None],
                       stop: threading.Event, *, poll_seconds: float = 1.0) -> None:
    """Call `on_change` after every committed change to posts or saved feeds, until `stop` is set.

    Runs on its own autocommit connection (a LISTEN must not sit in a pooled transaction).
    `on_ready` is called once the LISTEN is in place: changes committed before it are not reported,
    so the caller must not trust anything rendered before that. Raises psycopg.Error when the
    connection fails; the caller decides whether to reconnect.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANGE_CHANNEL)))
        on_ready()
        while not stop.is_set():
            for _notification in conn.notifies(timeout=poll_seconds, stop_after=1):
                on_change()
