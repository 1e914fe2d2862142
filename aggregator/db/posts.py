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

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import psycopg
from psycopg import sql

from aggregator.ingest.models import Post

T = TypeVar("T")


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


# Advisory locks that make two workers storing one new URL from two feeds make one post. Every
# lock of a transaction takes a slot of PostgreSQL's shared lock table until it ends, and that
# table is small (max_locks_per_transaction x max_connections: 6,400 slots by default, for every
# session together), so one transaction takes at most URL_LOCKS_MAX + 1 of them:
NEW_URLS_LOCK = 7_242_019_003  # one key: shared by a batch locking its URLs one by one, exclusive by a big batch
URL_LOCK_CLASS = 72_421  # advisory lock class (two-key form): "storing a post with this URL"; key hashtext(url)
URL_LOCKS_MAX = 256  # new URLs a batch locks one by one; a bigger batch takes NEW_URLS_LOCK exclusively


def _lock_urls(conn: psycopg.Connection, urls: list[str]) -> None:
    """Serialize workers storing the same new URL from different sources until this transaction
    ends: without it, both look for the URL before either commits, and both insert the article.

    A batch of up to URL_LOCKS_MAX new URLs shares NEW_URLS_LOCK and locks each URL's hash, so
    small batches only wait for one another when they store the same URL (or a colliding hash).
    A bigger batch (a feed's first poll with thousands of entries) takes NEW_URLS_LOCK alone,
    exclusively: it waits for the small batches in flight and they wait for it, one lock instead
    of one per URL. Locks are taken in one order (NEW_URLS_LOCK, then hashes ascending), so two
    batches cannot deadlock on them."""
    if not urls:
        return
    if len(urls) > URL_LOCKS_MAX:
        conn.execute("SELECT pg_advisory_xact_lock(%(key)s)", {"key": NEW_URLS_LOCK})
        return
    conn.execute("SELECT pg_advisory_xact_lock_shared(%(key)s)", {"key": NEW_URLS_LOCK})
    conn.execute(
        """
        SELECT count(pg_advisory_xact_lock(%(class)s, k))
        FROM (SELECT DISTINCT hashtext(u) AS k FROM unnest(%(urls)s::text[]) AS u ORDER BY k) AS keys
        """,
        {"urls": urls, "class": URL_LOCK_CLASS},
    )


def _is_edit(post: Post, stored: StoredPost, source_id: int) -> bool:
    if post.content_hash == stored.content_hash:
        return False
    if post.updated_at and stored.updated_at and post.updated_at != stored.updated_at:
        return post.updated_at > stored.updated_at
    return stored.source_id in (None, source_id)


# One statement per chunk of up to WRITE_CHUNK rows: rows travel as a JSON array and are unpacked
# by jsonb_to_recordset, so statement-level triggers fire once per chunk and a feed costs a few
# round trips. Chunks keep the JSON text (and its copy on the way to the server) small when a
# feed has tens of thousands of entries; they all run in the caller's one transaction.
WRITE_CHUNK = 5_000
_ROW_TYPE = sql.SQL("""
    dedup_key text, url text, title text, author text, published_at timestamptz, updated_at timestamptz,
    categories text[], html text, text text, summary text, lang text, content_hash text,
    countries text[], primary_countries text[], topics text[], places text[], taxonomy_version text, id bigint
""")

# An entry without a date is stored without one: lists and feeds sort it by its arrival
# (posts.sort_at, migration 0007), and say that its date is an estimate.
_INSERT = sql.SQL("""
INSERT INTO posts (dedup_key, url, title, author, published_at, updated_at, categories, html, text,
                   summary, lang, content_hash, countries, primary_countries, topics, places, taxonomy_version,
                   source_id, first_seen_at, changed_at)
SELECT r.dedup_key, r.url, r.title, r.author, r.published_at, r.updated_at,
       r.categories, r.html, r.text, r.summary, r.lang, r.content_hash,
       coalesce(r.countries, '{{}}'), coalesce(r.primary_countries, '{{}}'), coalesce(r.topics, '{{}}'),
       coalesce(r.places, '{{}}'), r.taxonomy_version, %(source_id)s, %(now)s, %(now)s
FROM jsonb_to_recordset(%(rows)s::jsonb) AS r({row_type})
ON CONFLICT (dedup_key) DO NOTHING
RETURNING id, dedup_key
""").format(row_type=_ROW_TYPE)

_UPDATE = sql.SQL("""
UPDATE posts p SET url = r.url, title = r.title, author = r.author,
       published_at = coalesce(r.published_at, p.published_at), updated_at = r.updated_at,
       categories = r.categories, html = r.html, text = r.text, summary = r.summary, lang = r.lang,
       content_hash = r.content_hash, changed_at = %(now)s,
       countries = coalesce(r.countries, p.countries),
       primary_countries = coalesce(r.primary_countries, p.primary_countries),
       topics = coalesce(r.topics, p.topics),
       places = coalesce(r.places, p.places),
       taxonomy_version = coalesce(r.taxonomy_version, p.taxonomy_version)
FROM jsonb_to_recordset(%(rows)s::jsonb) AS r({row_type})
WHERE p.id = r.id
""").format(row_type=_ROW_TYPE)

_LINK = """
INSERT INTO post_sources (post_id, source_id, guid, first_seen_at)
SELECT l.post_id, %(source_id)s, l.guid, %(now)s
FROM jsonb_to_recordset(%(links)s::jsonb) AS l(post_id bigint, guid text)
ON CONFLICT (post_id, source_id) DO NOTHING
"""


def _row(post: Post, taxonomy_version: str | None, post_id: int | None = None) -> dict[str, object]:
    """A post as one JSON object for jsonb_to_recordset; tag arrays only when the post was tagged."""
    tagged = taxonomy_version is not None
    return {
        "dedup_key": post.dedup_key,
        "url": post.url,
        "title": post.title,
        "author": post.author,
        "published_at": post.published_at.isoformat() if post.published_at else None,
        "updated_at": post.updated_at.isoformat() if post.updated_at else None,
        "categories": list(post.categories),
        "html": post.html,
        "text": post.text,
        "summary": post.summary,
        "lang": post.lang,
        "content_hash": post.content_hash,
        "countries": [t.code for t in post.tags if t.kind == "country"] if tagged else None,
        "primary_countries": [t.code for t in post.tags if t.role == "primary"] if tagged else None,
        "topics": [t.code for t in post.tags if t.kind == "topic"] if tagged else None,
        "places": [t.code for t in post.tags if t.kind == "place"] if tagged else None,
        "taxonomy_version": taxonomy_version,
        "id": post_id,
    }


def upsert_for_source(
    conn: psycopg.Connection,
    source_id: int,
    posts: Sequence[Post],
    now: datetime,
    taxonomy_version: str | None = None,
) -> UpsertResult:
    """Store one feed's posts: insert new ones, update edited ones, link all to the source.

    With a taxonomy version, the posts' tag arrays (what the API filters on) are written too.
    """
    if not posts:
        return UpsertResult((), (), ())
    by_key = _existing_by_key(conn, [p.dedup_key for p in posts])
    unmatched = [p for p in posts if p.dedup_key not in by_key]
    by_guid = _existing_by_guid_here(conn, [p.guid for p in unmatched], source_id)
    unmatched_urls = sorted({p.url for p in unmatched if p.url and p.guid not in by_guid})
    _lock_urls(conn, unmatched_urls)
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
    inserted, found = _insert(conn, [posts[i] for i in to_insert], source_id, now, taxonomy_version)
    for i in to_insert:
        key = posts[i].dedup_key
        ids[i] = inserted[key] if key in inserted else found[key]

    edits = {s.id: i for i, s in matched.items() if _is_edit(posts[i], s, source_id)}
    for chunk in _chunks(list(edits.items())):
        rows = [_row(posts[i], taxonomy_version, post_id) for post_id, i in chunk]
        conn.execute(_UPDATE, {"rows": json.dumps(rows), "now": now})

    for chunk in _chunks(range(len(posts))):
        links = [{"post_id": ids[i], "guid": posts[i].guid} for i in chunk]
        conn.execute(_LINK, {"links": json.dumps(links), "source_id": source_id, "now": now})
    return UpsertResult(
        new_ids=tuple(sorted(inserted.values())),
        updated_ids=tuple(sorted(edits)),
        post_ids=tuple(ids[i] for i in range(len(posts))),
    )


def _insert(
    conn: psycopg.Connection, posts: list[Post], source_id: int, now: datetime, taxonomy_version: str | None
) -> tuple[dict[str, int], dict[str, int]]:
    """(dedup_key -> id inserted by us, dedup_key -> id inserted meanwhile by another worker)."""
    if not posts:
        return {}, {}
    inserted: dict[str, int] = {}
    for chunk in _chunks(posts):
        rows = json.dumps([_row(p, taxonomy_version) for p in chunk])
        cur = conn.execute(_INSERT, {"rows": rows, "source_id": source_id, "now": now})
        inserted.update((key, post_id) for post_id, key in cur.fetchall())
    missing = [p.dedup_key for p in posts if p.dedup_key not in inserted]
    found = {k: s.id for k, s in _existing_by_key(conn, missing).items()} if missing else {}
    return inserted, found


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), WRITE_CHUNK):
        yield items[start:start + WRITE_CHUNK]


def count(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM posts").fetchone()
    return int(row[0]) if row else 0
