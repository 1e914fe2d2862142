"""SQL for posts: idempotent upserts of one feed's posts, and linking them to their sources.

Identity rules (why a post is stored once):
- the same `dedup_key` (a globally unique entry id, or a feed-scoped one) is the same post;
- the same canonical URL arriving from *another* source is the same article, linked to both.
Within one source, distinct entry ids sharing a URL stay distinct posts (some feeds point every
entry at their home page).
An edit replaces the stored content in place when it is newer, or when it comes from the
post's original source; two sources carrying different versions of one article never flip it
back and forth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from aggregator.models import Post


@dataclass(frozen=True, slots=True)
class StoredPost:
    id: int
    dedup_key: str
    url: str | None
    content_hash: str
    updated_at: datetime | None
    source_id: int | None


@dataclass(frozen=True, slots=True)
class UpsertResult:
    new_ids: tuple[int, ...]
    updated_ids: tuple[int, ...]
    post_ids: tuple[int, ...]  # one per input post, in input order

    @property
    def new(self) -> int:
        return len(self.new_ids)

    @property
    def updated(self) -> int:
        return len(self.updated_ids)


def _existing_by_key(conn: psycopg.Connection, keys: list[str]) -> dict[str, StoredPost]:
    rows = conn.execute(
        """
        SELECT id, dedup_key, url, content_hash, updated_at, source_id
        FROM posts WHERE dedup_key = ANY(%(keys)s)
        """,
        {"keys": keys},
    ).fetchall()
    return {r[1]: StoredPost(*r) for r in rows}


def _existing_by_guid_here(
    conn: psycopg.Connection, guids: list[str], source_id: int
) -> dict[str, StoredPost]:
    """Posts this source already delivered under these entry ids (linked earlier by URL)."""
    if not guids:
        return {}
    rows = conn.execute(
        """
        SELECT ps.guid, p.id, p.dedup_key, p.url, p.content_hash, p.updated_at, p.source_id
        FROM post_sources ps JOIN posts p ON p.id = ps.post_id
        WHERE ps.source_id = %(source)s AND ps.guid = ANY(%(guids)s)
        """,
        {"guids": guids, "source": source_id},
    ).fetchall()
    return {r[0]: StoredPost(*r[1:]) for r in rows}


def _existing_by_url_elsewhere(
    conn: psycopg.Connection, urls: list[str], source_id: int
) -> dict[str, StoredPost]:
    """Posts with these URLs that came from other sources only (cross-feed duplicates)."""
    if not urls:
        return {}
    rows = conn.execute(
        """
        SELECT DISTINCT ON (p.url) p.id, p.dedup_key, p.url, p.content_hash, p.updated_at, p.source_id
        FROM posts p
        WHERE p.url = ANY(%(urls)s)
          AND NOT EXISTS (SELECT 1 FROM post_sources ps
                          WHERE ps.post_id = p.id AND ps.source_id = %(source)s)
        ORDER BY p.url, p.id
        """,
        {"urls": urls, "source": source_id},
    ).fetchall()
    return {r[2]: StoredPost(*r) for r in rows}


def _is_edit(post: Post, stored: StoredPost, source_id: int) -> bool:
    if post.content_hash == stored.content_hash:
        return False
    if post.updated_at and stored.updated_at and post.updated_at != stored.updated_at:
        return post.updated_at > stored.updated_at
    return stored.source_id in (None, source_id)


_INSERT = """
INSERT INTO posts (dedup_key, url, title, author, published_at, updated_at, categories, html, text,
                   summary, lang, content_hash, source_id, first_seen_at, changed_at)
VALUES (%(dedup_key)s, %(url)s, %(title)s, %(author)s, coalesce(%(published_at)s, %(now)s),
        %(updated_at)s, %(categories)s, %(html)s, %(text)s, %(summary)s, %(lang)s, %(content_hash)s,
        %(source_id)s, %(now)s, %(now)s)
ON CONFLICT (dedup_key) DO NOTHING
RETURNING id, dedup_key
"""

_UPDATE = """
UPDATE posts SET url = %(url)s, title = %(title)s, author = %(author)s,
       published_at = coalesce(%(published_at)s, published_at), updated_at = %(updated_at)s,
       categories = %(categories)s, html = %(html)s, text = %(text)s, summary = %(summary)s,
       lang = %(lang)s, content_hash = %(content_hash)s, changed_at = %(now)s
WHERE id = %(id)s
"""

_LINK = """
INSERT INTO post_sources (post_id, source_id, guid, first_seen_at)
VALUES (%(post_id)s, %(source_id)s, %(guid)s, %(now)s)
ON CONFLICT (post_id, source_id) DO NOTHING
"""


def _params(post: Post, source_id: int, now: datetime) -> dict[str, object]:
    return {
        "dedup_key": post.dedup_key,
        "url": post.url,
        "title": post.title,
        "author": post.author,
        "published_at": post.published_at,
        "updated_at": post.updated_at,
        "categories": list(post.categories),
        "html": post.html,
        "text": post.text,
        "summary": post.summary,
        "lang": post.lang,
        "content_hash": post.content_hash,
        "source_id": source_id,
        "now": now,
    }


def upsert_for_source(
    conn: psycopg.Connection, source_id: int, posts: Sequence[Post], now: datetime
) -> UpsertResult:
    """Store one feed's posts: insert new ones, update edited ones, link all to the source."""
    if not posts:
        return UpsertResult((), (), ())
    by_key = _existing_by_key(conn, [p.dedup_key for p in posts])
    unmatched = [p for p in posts if p.dedup_key not in by_key]
    by_guid = _existing_by_guid_here(conn, [p.guid for p in unmatched], source_id)
    unmatched_urls = sorted({p.url for p in unmatched if p.url and p.guid not in by_guid})
    by_url = _existing_by_url_elsewhere(conn, unmatched_urls, source_id)

    matched: dict[int, StoredPost] = {}
    to_insert: list[int] = []
    for i, post in enumerate(posts):
        stored = (
            by_key.get(post.dedup_key)
            or by_guid.get(post.guid)
            or (by_url.get(post.url) if post.url else None)
        )
        if stored is None:
            to_insert.append(i)
        else:
            matched[i] = stored

    ids: dict[int, int] = {i: s.id for i, s in matched.items()}
    new_ids = _insert(conn, [posts[i] for i in to_insert], source_id, now)
    for i in to_insert:
        ids[i] = new_ids[posts[i].dedup_key]
    created = {new_ids[k] for k in new_ids.inserted}

    edits = [(i, s) for i, s in matched.items() if _is_edit(posts[i], s, source_id)]
    if edits:
        with conn.cursor() as cur:
            cur.executemany(_UPDATE, [{**_params(posts[i], source_id, now), "id": s.id} for i, s in edits])

    with conn.cursor() as cur:
        cur.executemany(
            _LINK,
            [{"post_id": ids[i], "source_id": source_id, "guid": p.guid, "now": now} for i, p in enumerate(posts)],
        )
    return UpsertResult(
        new_ids=tuple(sorted(created)),
        updated_ids=tuple(sorted({s.id for _, s in edits})),
        post_ids=tuple(ids[i] for i in range(len(posts))),
    )


class _KeyIds(dict[str, int]):
    """dedup_key -> id, remembering which keys this call inserted (vs. found inserted by a racer)."""

    inserted: set[str]


def _insert(conn: psycopg.Connection, posts: list[Post], source_id: int, now: datetime) -> _KeyIds:
    result = _KeyIds()
    result.inserted = set()
    if not posts:
        return result
    with conn.cursor() as cur:
        cur.executemany(_INSERT, [_params(p, source_id, now) for p in posts], returning=True)
        while True:
            row = cur.fetchone()
            if row is not None:
                result[row[1]] = row[0]
                result.inserted.add(row[1])
            if not cur.nextset():
                break
    missing = [p.dedup_key for p in posts if p.dedup_key not in result]
    if missing:  # inserted meanwhile by another worker (same post in another feed): link to it
        for key, stored in _existing_by_key(conn, missing).items():
            result[key] = stored.id
    return result


def count(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM posts").fetchone()
    return int(row[0]) if row else 0
