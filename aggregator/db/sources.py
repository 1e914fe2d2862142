"""SQL for feed sources: sync from config, CLI management, claiming due feeds, recording outcomes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import class_row

from aggregator.errors import InvalidQueryError
from aggregator.sources.spec import SourceSpec
from aggregator.sources.urls import check_feed_url


@dataclass(slots=True)
class Source:
    id: int
    url: str
    previous_urls: list[str]
    name: str | None
    title: str | None
    site_url: str | None
    default_countries: list[str]
    default_topics: list[str]
    origin: str
    enabled: bool
    disabled_reason: str | None
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    poll_interval: int
    server_min_interval: int
    next_poll_at: datetime
    lease_owner: str | None
    lease_until: datetime | None
    last_polled_at: datetime | None
    last_success_at: datetime | None
    last_new_post_at: datetime | None
    last_error: str | None
    last_error_kind: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    permanent_failures: int
    created_at: datetime
    updated_at: datetime
    last_warnings: list[str]  # of the last poll that read the body: what it stored not in full

    @property
    def display_name(self) -> str:
        return self.name or self.title or self.url


@dataclass(frozen=True, slots=True)
class SourceHealth:
    source: Source
    posts_count: int


def get(conn: psycopg.Connection, source_id: int) -> Source | None:
    cur = conn.cursor(row_factory=class_row(Source))
    return cur.execute("SELECT * FROM sources WHERE id = %(id)s", {"id": source_id}).fetchone()


def get_by_url(conn: psycopg.Connection, url: str) -> Source | None:
    """The source at `url`, or the one that moved away from it by a permanent redirect."""
    cur = conn.cursor(row_factory=class_row(Source))
    return cur.execute(
        """
        SELECT * FROM sources WHERE url = %(url)s OR %(url)s = ANY(previous_urls)
        ORDER BY url = %(url)s DESC LIMIT 1
        """,
        {"url": url},
    ).fetchone()


def add(conn: psycopg.Connection, spec: SourceSpec, *, origin: str, poll_interval: int) -> tuple[Source, bool]:
    """Insert a source, or re-enable and update an existing one; returns (source, created).

    The spec is already checked (aggregator.sources.registry). Codes given as None keep what a
    known source has. A source that moved by a permanent redirect is found by its old URL and
    updated in place.
    """
    cur = conn.cursor(row_factory=class_row(Source))
    existing = get_by_url(conn, spec.url)
    url = existing.url if existing is not None else spec.url
    row = cur.execute(
        """
        INSERT INTO sources (url, name, default_countries, default_topics, origin, poll_interval)
        VALUES (%(url)s, %(name)s, coalesce(%(countries)s::text[], '{}'), coalesce(%(topics)s::text[], '{}'),
                %(origin)s, %(interval)s)
        ON CONFLICT (url) DO UPDATE SET
            name = coalesce(EXCLUDED.name, sources.name),
            default_countries = coalesce(%(countries)s::text[], sources.default_countries),
            default_topics = coalesce(%(topics)s::text[], sources.default_topics),
            origin = EXCLUDED.origin,
            enabled = true,
            disabled_reason = NULL,
            consecutive_failures = CASE WHEN sources.enabled THEN sources.consecutive_failures ELSE 0 END,
            permanent_failures = CASE WHEN sources.enabled THEN sources.permanent_failures ELSE 0 END,
            next_poll_at = CASE WHEN sources.enabled THEN sources.next_poll_at ELSE now() END,
            updated_at = now()
        RETURNING *
        """,
        {
            "url": url,
            "name": spec.name,
            "countries": _codes(spec.default_countries),
            "topics": _codes(spec.default_topics),
            "origin": origin,
            "interval": poll_interval,
        },
    ).fetchone()
    assert row is not None
    return row, existing is None


def _codes(codes: tuple[str, ...] | None) -> list[str] | None:
    return None if codes is None else list(codes)


def known_urls(conn: psycopg.Connection, urls: Sequence[str]) -> set[str]:
    """Those of `urls` a source already has, as its URL or as one it moved away from."""
    rows = conn.execute(
        """
        SELECT url FROM sources WHERE url = ANY(%(urls)s::text[])
        UNION
        SELECT old FROM sources, unnest(previous_urls) AS old
        WHERE previous_urls && %(urls)s::text[] AND old = ANY(%(urls)s::text[])
        """,
        {"urls": list(urls)},
    ).fetchall()
    return {r[0] for r in rows}


def insert_new(conn: psycopg.Connection, specs: Sequence[SourceSpec], *, origin: str,
               poll_interval: int) -> list[str]:
    """Insert many new sources in one statement (an import of thousands); a URL that exists
    already is left as it is. Returns the URLs inserted. (Codes travel comma-joined: arrays of
    arrays must be rectangular, and a checked code never holds a comma.)"""
    rows = conn.execute(
        """
        INSERT INTO sources (url, name, default_countries, default_topics, origin, poll_interval)
        SELECT u, n, string_to_array(c, ','), string_to_array(t, ','), %(origin)s, %(interval)s
        FROM unnest(%(urls)s::text[], %(names)s::text[], %(countries)s::text[], %(topics)s::text[])
             AS given(u, n, c, t)
        ON CONFLICT (url) DO NOTHING
        RETURNING url
        """,
        {"urls": [s.url for s in specs], "names": [s.name for s in specs],
         "countries": [",".join(s.default_countries or ()) for s in specs],
         "topics": [",".join(s.default_topics or ()) for s in specs],
         "origin": origin, "interval": poll_interval},
    ).fetchall()
    return [r[0] for r in rows]


def enabled_urls(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT url FROM sources WHERE enabled ORDER BY id").fetchall()]


def disable(conn: psycopg.Connection, source_id: int, reason: str) -> None:
    conn.execute(
        """
        UPDATE sources SET enabled = false, disabled_reason = %(reason)s, lease_owner = NULL,
               lease_until = NULL, updated_at = now()
        WHERE id = %(id)s
        """,
        {"id": source_id, "reason": reason},
    )


def poll_soon(conn: psycopg.Connection, source_id: int) -> bool:
    """Make an enabled source due now (the next polling tick claims it); False when it is disabled or gone."""
    row = conn.execute(
        "UPDATE sources SET next_poll_at = now(), updated_at = now() WHERE id = %(id)s AND enabled RETURNING id",
        {"id": source_id},
    ).fetchone()
    return row is not None


def delete(conn: psycopg.Connection, source_id: int) -> None:
    """Delete a source row; its posts stay (their first-source link becomes NULL)."""
    conn.execute("DELETE FROM sources WHERE id = %(id)s", {"id": source_id})


def disable_missing_from_config(conn: psycopg.Connection, config_urls: Iterable[str]) -> list[str]:
    """Disable config-origin sources no longer in the config file; nothing is deleted."""
    rows = conn.execute(
        """
        UPDATE sources SET enabled = false, disabled_reason = 'removed from the feeds file',
               updated_at = now()
        WHERE origin = 'config' AND enabled AND NOT (url = ANY(%(urls)s))
          AND NOT (previous_urls && %(urls)s)
        RETURNING url
        """,
        {"urls": list(config_urls)},
    ).fetchall()
    return [r[0] for r in rows]


def list_with_health(conn: psycopg.Connection, *, include_disabled: bool = True) -> list[SourceHealth]:
    cur = conn.cursor()
    rows = cur.execute(
        """
        SELECT s.id, (SELECT count(*) FROM post_sources ps WHERE ps.source_id = s.id) AS posts_count
        FROM sources s
        WHERE %(all)s OR s.enabled
        ORDER BY s.enabled DESC, coalesce(s.name, s.title, s.url)
        """,
        {"all": include_disabled},
    ).fetchall()
    counts = {r[0]: r[1] for r in rows}
    scur = conn.cursor(row_factory=class_row(Source))
    sources = scur.execute(
        "SELECT * FROM sources WHERE id = ANY(%(ids)s)", {"ids": list(counts)}
    ).fetchall()
    by_id = {s.id: s for s in sources}
    return [SourceHealth(by_id[i], counts[i]) for i in counts]


def claim_due(
    conn: psycopg.Connection, *, owner: str, limit: int, lease_seconds: int, urls: Sequence[str] | None = None
) -> list[Source]:
    """Reserve up to `limit` due feeds for `owner` until the lease ends.

    SKIP LOCKED lets several workers claim concurrently without waiting on each other; the lease
    (not the row lock) is what keeps a feed reserved while it is polled outside the transaction,
    and what frees it if the worker dies.
    """
    cur = conn.cursor(row_factory=class_row(Source))
    return cur.execute(
        """
        UPDATE sources SET lease_owner = %(owner)s,
                           lease_until = now() + make_interval(secs => %(lease)s)
        WHERE id IN (
            SELECT id FROM sources
            WHERE enabled
              AND (lease_until IS NULL OR lease_until < now())
              AND (%(urls)s::text[] IS NULL OR url = ANY(%(urls)s::text[]))
              AND (next_poll_at <= now() OR %(urls)s::text[] IS NOT NULL)
            ORDER BY next_poll_at
            LIMIT %(limit)s
            FOR UPDATE SKIP LOCKED
        )
        RETURNING *
        """,
        {"owner": owner, "lease": lease_seconds, "limit": limit, "urls": list(urls) if urls else None},
    ).fetchall()


@dataclass(frozen=True, slots=True)
class Availability:
    """Why a named feed might not be claimable now: disabled, or leased by another worker. Times
    are the database's, so workers on machines with skewed clocks agree on them."""

    id: int
    url: str
    enabled: bool
    disabled_reason: str | None
    lease_owner: str | None
    lease_until: datetime | None
    lease_seconds_left: float  # 0 when not leased


def availability(conn: psycopg.Connection, ids: Sequence[int]) -> list[Availability]:
    cur = conn.cursor(row_factory=class_row(Availability))
    return cur.execute(
        """
        SELECT id, url, enabled, disabled_reason,
               CASE WHEN lease_until > now() THEN lease_owner END AS lease_owner,
               CASE WHEN lease_until > now() THEN lease_until END AS lease_until,
               greatest(0, extract(epoch FROM lease_until - now()))::float8 AS lease_seconds_left
        FROM sources WHERE id = ANY(%(ids)s) ORDER BY id
        """,
        {"ids": list(ids)},
    ).fetchall()


def release_all(conn: psycopg.Connection, owner: str) -> int:
    """Free every feed `owner` still holds (a clean shutdown); a poll still running for one of them
    then finds its lease gone and discards its result instead of overwriting a newer one."""
    cur = conn.execute(
        "UPDATE sources SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = %(owner)s",
        {"owner": owner},
    )
    return cur.rowcount


@dataclass(frozen=True, slots=True)
class PollRecord:
    """What one poll decided about its source; written in the same transaction as the posts."""

    source_id: int
    owner: str
    polled_at: datetime
    next_poll_at: datetime
    poll_interval: int
    server_min_interval: int
    ok: bool
    new_posts: int = 0
    url: str | None = None  # new URL after a permanent redirect
    title: str | None = None
    site_url: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    error: str | None = None
    error_kind: str | None = None
    permanent_error: bool = False
    disable_reason: str | None = None
    warnings: tuple[str, ...] | None = None  # of a poll that read the body; None keeps the last ones


WARNINGS_KEPT = 10  # per source, each cut to WARNING_CHARS
WARNING_CHARS = 500


def record_poll(conn: psycopg.Connection, rec: PollRecord) -> bool:
    """Store the outcome and release the lease. Returns False if our lease was lost (another
    worker took the feed after it expired): the caller's transaction must then be rolled back.

    A permanent redirect to a URL that could not be added by hand (one carrying credentials, say)
    is followed but not stored: every stored URL passes the rules of aggregator.sources.urls.
    """
    params = {
        "id": rec.source_id,
        "owner": rec.owner,
        "polled": rec.polled_at,
        "next": rec.next_poll_at,
        "interval": rec.poll_interval,
        "server_min": rec.server_min_interval,
        "ok": rec.ok,
        "new_posts": rec.new_posts,
        "url": rec.url if rec.url and _acceptable(rec.url) else None,
        "title": rec.title,
        "site_url": rec.site_url,
        "etag": rec.etag,
        "last_modified": rec.last_modified,
        "body_hash": rec.body_hash,
        "error": rec.error,
        "error_kind": rec.error_kind,
        "permanent": rec.permanent_error,
        "disable": rec.disable_reason,
        "warnings": None if rec.warnings is None else [w[:WARNING_CHARS] for w in rec.warnings[:WARNINGS_KEPT]],
    }
    row = conn.execute(_RECORD_POLL, params).fetchone()
    return row is not None


def _acceptable(url: str) -> bool:
    try:
        check_feed_url(url)
    except InvalidQueryError:
        return False
    return True


_RECORD_POLL = """
UPDATE sources SET
    previous_urls = CASE WHEN %(url)s::text IS NULL OR %(url)s = url OR taken.id IS NOT NULL
                         THEN previous_urls ELSE array_append(previous_urls, url) END,
    url = CASE WHEN %(url)s::text IS NULL OR taken.id IS NOT NULL THEN url ELSE %(url)s END,
    title = coalesce(%(title)s, title),
    site_url = coalesce(%(site_url)s, site_url),
    etag = CASE WHEN %(ok)s THEN %(etag)s ELSE etag END,
    last_modified = CASE WHEN %(ok)s THEN %(last_modified)s ELSE last_modified END,
    body_hash = CASE WHEN %(ok)s THEN coalesce(%(body_hash)s, body_hash) ELSE body_hash END,
    poll_interval = %(interval)s,
    server_min_interval = %(server_min)s,
    next_poll_at = %(next)s,
    last_polled_at = %(polled)s,
    last_success_at = CASE WHEN %(ok)s THEN %(polled)s ELSE last_success_at END,
    last_new_post_at = CASE WHEN %(new_posts)s > 0 THEN %(polled)s ELSE last_new_post_at END,
    last_error = CASE WHEN %(ok)s THEN last_error ELSE %(error)s END,
    last_error_kind = CASE WHEN %(ok)s THEN last_error_kind ELSE %(error_kind)s END,
    last_error_at = CASE WHEN %(ok)s THEN last_error_at ELSE %(polled)s END,
    consecutive_failures = CASE WHEN %(ok)s THEN 0 ELSE consecutive_failures + 1 END,
    permanent_failures = CASE WHEN %(ok)s THEN 0
                              WHEN %(permanent)s THEN permanent_failures + 1
                              ELSE permanent_failures END,
    enabled = enabled AND %(disable)s::text IS NULL,
    disabled_reason = coalesce(%(disable)s, disabled_reason),
    last_warnings = coalesce(%(warnings)s::text[], last_warnings),
    lease_owner = NULL,
    lease_until = NULL,
    updated_at = now()
FROM (SELECT NULL::bigint AS id
      UNION ALL
      SELECT o.id FROM sources o WHERE o.url = %(url)s AND o.id <> %(id)s
      ORDER BY id NULLS LAST LIMIT 1) AS taken  -- another source already has the new URL: keep ours
WHERE sources.id = %(id)s AND sources.lease_owner = %(owner)s
RETURNING sources.id
"""
