"""SQL for digests: claiming a period, leasing digests to send, recording each outcome, and
reading the posts that arrived in a digest's window.

Exactly once lives in these statements. A digest row (unique per subscription and period) is
inserted before anything is sent; a sender leases it (state 'sending', attempts + 1) and records
the outcome under that lease. A lease that ran out while 'sending' means a process died mid-send:
the row goes back to 'pending' marked `uncertain`, and is sent again with the same Message-ID.
The subscription's watermark moves to the window's end only when its digest was delivered (or
had nothing to say), so a failed digest's posts are carried by the next one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from aggregator.db.query import where
from aggregator.query import PostFilter


@dataclass(slots=True)
class DigestRow:
    id: int
    subscription_id: int
    period: date
    state: str
    window_start: datetime
    window_end: datetime
    message_id: str
    items: int | None
    attempts: int
    uncertain: bool
    next_attempt_at: datetime
    last_error: str | None
    sent_at: datetime | None


@dataclass(slots=True)
class WindowPost:
    id: int
    title: str
    url: str | None
    published_at: datetime
    first_seen_at: datetime
    summary: str
    countries: list[str]
    primary_countries: list[str]
    topics: list[str]
    source_id: int | None
    source_name: str | None
    other_sources: list[str]  # names of the other sources linked to this post
    total: int  # matches in the window, of which these rows are the newest


_COLUMNS = sql.SQL("""id, subscription_id, period, state, window_start, window_end, message_id, items, attempts,
              uncertain, next_attempt_at, last_error, sent_at""")


def claim(conn: psycopg.Connection, periods: dict[int, date], *, window_end: datetime, now: datetime,
          domain: str) -> list[int]:
    """Insert the digest row of each (subscription, period) that has none yet and no digest
    still in flight; returns the ids this call inserted (another process may have won the rest)."""
    if not periods:
        return []
    rows = conn.execute("""
        INSERT INTO digests (subscription_id, period, window_start, window_end, message_id, next_attempt_at)
        SELECT s.id, c.period, coalesce(s.watermark, %(window_end)s), %(window_end)s,
               format('<digest.%%s.%%s.%%s@%%s>', s.id, c.period, substr(md5(random()::text), 1, 10), %(domain)s::text),
               %(now)s
        FROM unnest(%(ids)s::bigint[], %(periods)s::date[]) AS c (id, period)
        JOIN subscriptions s ON s.id = c.id AND s.state = 'active'
        WHERE NOT EXISTS (SELECT 1 FROM digests d WHERE d.subscription_id = s.id AND d.state IN ('pending', 'sending'))
        ON CONFLICT (subscription_id, period) DO NOTHING
        RETURNING id
    """, {"ids": list(periods), "periods": list(periods.values()), "window_end": window_end, "now": now,
          "domain": domain}).fetchall()
    return [r[0] for r in rows]


def recover_stale(conn: psycopg.Connection, now: datetime) -> list[DigestRow]:
    """Digests whose sender died mid-send: back to pending, flagged as possibly delivered."""
    cur = conn.cursor(row_factory=class_row(DigestRow))
    return cur.execute(sql.SQL("""
        UPDATE digests SET state = 'pending', uncertain = true, lease_owner = NULL, lease_until = NULL,
               next_attempt_at = %(now)s, last_error = 'interrupted while sending: may have been delivered'
        WHERE state = 'sending' AND lease_until < %(now)s
        RETURNING {columns}
    """).format(columns=_COLUMNS), {"now": now}).fetchall()


def take_ready(conn: psycopg.Connection, *, owner: str, now: datetime, lease_until: datetime,
               limit: int) -> list[DigestRow]:
    """Lease up to `limit` digests that are ready to (re)send; the attempt is counted now, before
    any byte goes out, so a crash is counted too. SKIP LOCKED: concurrent senders take disjoint sets."""
    cur = conn.cursor(row_factory=class_row(DigestRow))
    return cur.execute(sql.SQL("""
        UPDATE digests SET state = 'sending', attempts = attempts + 1, lease_owner = %(owner)s,
               lease_until = %(lease_until)s
        WHERE id IN (SELECT id FROM digests WHERE state = 'pending' AND next_attempt_at <= %(now)s
                     ORDER BY next_attempt_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
        RETURNING {columns}
    """).format(columns=_COLUMNS), {"owner": owner, "now": now, "lease_until": lease_until, "limit": limit}).fetchall()


def finish(conn: psycopg.Connection, digest_id: int, *, owner: str, state: str, now: datetime,
           items: int | None = None, error: str | None = None) -> bool:
    """Record 'sent', 'empty' or 'failed' under our lease; delivered ones move the watermark.
    One statement: it runs once per message, right after the server's reply."""
    row = conn.execute("""
        WITH done AS (
            UPDATE digests SET state = %(state)s, items = coalesce(%(items)s, items), last_error = %(error)s,
                   sent_at = CASE WHEN %(state)s = 'sent' THEN %(now)s ELSE sent_at END,
                   lease_owner = NULL, lease_until = NULL
            WHERE id = %(id)s AND state = 'sending' AND lease_owner = %(owner)s
            RETURNING subscription_id, window_end
        ), moved AS (
            UPDATE subscriptions s SET watermark = greatest(s.watermark, done.window_end), last_error = NULL
            FROM done WHERE s.id = done.subscription_id AND %(state)s IN ('sent', 'empty')
            RETURNING s.id
        )
        SELECT (SELECT count(*) FROM done), (SELECT count(*) FROM moved)
    """, {"id": digest_id, "owner": owner, "state": state, "now": now, "items": items,
          "error": error[:1000] if error else None}).fetchone()
    return bool(row and row[0])


def retry_later(conn: psycopg.Connection, digest_id: int, *, owner: str, at: datetime, error: str) -> bool:
    return conn.execute("""
        UPDATE digests SET state = 'pending', next_attempt_at = %(at)s, last_error = %(error)s,
               lease_owner = NULL, lease_until = NULL
        WHERE id = %(id)s AND state = 'sending' AND lease_owner = %(owner)s
    """, {"id": digest_id, "owner": owner, "at": at, "error": error[:1000]}).rowcount == 1


def of_subscription(conn: psycopg.Connection, sub_id: int) -> list[DigestRow]:
    cur = conn.cursor(row_factory=class_row(DigestRow))
    statement = sql.SQL("SELECT {columns} FROM digests WHERE subscription_id = %(id)s ORDER BY period, id")
    return cur.execute(statement.format(columns=_COLUMNS), {"id": sub_id}).fetchall()


def posts_in_window(conn: psycopg.Connection, post_filter: PostFilter, start: datetime, end: datetime, *,
                    limit: int) -> list[WindowPost]:
    """The newest `limit` posts matching the filter that arrived in [start, end), each with the
    count of all matches; the filter is the API's (aggregator.db.query.where)."""
    condition, params = where(post_filter)
    statement = sql.SQL("""
        WITH hits AS (
            SELECT p.id, count(*) OVER () AS total
            FROM posts p
            WHERE {condition} AND p.first_seen_at >= %(window_start)s AND p.first_seen_at < %(window_end)s
            ORDER BY p.published_at DESC, p.id DESC
            LIMIT %(limit)s
        )
        SELECT p.id, p.title, p.url, p.published_at, p.first_seen_at, p.summary, p.countries,
               p.primary_countries, p.topics, p.source_id, coalesce(s.name, s.title, s.url) AS source_name,
               coalesce((SELECT array_agg(coalesce(o.name, o.title, o.url) ORDER BY ps.first_seen_at, o.id)
                         FROM post_sources ps JOIN sources o ON o.id = ps.source_id
                         WHERE ps.post_id = p.id AND ps.source_id IS DISTINCT FROM p.source_id),
                        '{{}}') AS other_sources,
               h.total
        FROM hits h JOIN posts p ON p.id = h.id LEFT JOIN sources s ON s.id = p.source_id
        ORDER BY p.published_at DESC, p.id DESC
    """).format(condition=condition)
    values: dict[str, Any] = {**params, "window_start": start, "window_end": end, "limit": limit}
    return conn.cursor(row_factory=class_row(WindowPost)).execute(statement, values).fetchall()
