"""SQL for digests: claiming a period, leasing digests to send, recording each outcome, and
reading the posts that arrived in a digest's window.

Exactly once lives in these statements. A digest row (unique per subscription and period) is
inserted before anything is sent; a sender leases it (state 'sending', attempts + 1) and records
the outcome under that lease. A lease that ran out while 'sending' means a process died mid-send:
the row goes back to 'pending' marked `uncertain`, and is sent again with the same Message-ID.
The subscription's watermark moves to the window's end only when its digest was delivered (or
had nothing to say), so a failed digest's posts are carried by the next one.

A window is bounded by snapshots (migration 0008): a digest carries the posts whose storing
transaction had committed when it was claimed (visible in its end snapshot) and that the last
delivered digest did not carry (not visible in the subscription's watermark snapshot). Commit
order, not the clock, decides, so no post committed before the claim is left for later and none
is carried twice. Without a start snapshot (a new subscription's first digest) the window starts
at window_start by first_seen_at.

A digest that found nothing does not use up its period: its row stays 'empty' and is claimed again
(the same row, reopened) at the next check after `recheck_at`, or at once when forced.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from aggregator.db.post_filters import filtered, where
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
    start_snapshot: str | None = None  # pg_snapshot as text; None: the window starts at window_start
    end_snapshot: str | None = None  # None: claimed before snapshots, the window ends at window_end

    @property
    def window(self) -> Window:
        return Window(self.window_start, self.start_snapshot,
                      self.window_end if self.end_snapshot is None else None, self.end_snapshot)


@dataclass(frozen=True, slots=True)
class Window:
    """Which arrivals a digest carries: after `start_snapshot` (else first seen from `start`), up to
    `end_snapshot` (else first seen before `end`; neither: everything committed now)."""

    start: datetime
    start_snapshot: str | None = None
    end: datetime | None = None
    end_snapshot: str | None = None


@dataclass(slots=True)
class WindowPost:
    id: int
    title: str
    url: str | None
    published_at: datetime  # the feed's date, else when first seen (date_estimated)
    first_seen_at: datetime
    summary: str
    countries: list[str]
    primary_countries: list[str]
    topics: list[str]
    source_id: int | None
    source_name: str | None
    other_sources: list[str]  # names of the other sources linked to this post
    total: int  # matches in the window, of which these rows are the newest
    date_estimated: bool = False  # the feed gave no date: published_at is when it was first seen
    story_id: int | None = None  # the story the post is in (posts of one story make one digest item)


_COLUMNS = sql.SQL("""id, subscription_id, period, state, window_start, window_end, message_id, items, attempts,
              uncertain, next_attempt_at, last_error, sent_at, start_snapshot::text, end_snapshot::text""")


def claim(conn: psycopg.Connection, periods: dict[int, date], *, now: datetime, domain: str,
          force: bool = False) -> list[tuple[int, int]]:
    """Insert the digest row of each (subscription, period) that has none yet and no digest still
    in flight, its window ending with this statement's snapshot; reopen the period's row instead
    when it ended empty and may be checked again (`force`: at once). Returns (digest id,
    subscription id) of what this call claimed (another process may have won the rest)."""
    if not periods:
        return []
    rows = conn.execute("""
        INSERT INTO digests (subscription_id, period, window_start, window_end, start_snapshot, end_snapshot,
                             message_id, next_attempt_at)
        SELECT s.id, c.period, coalesce(s.watermark, %(now)s), %(now)s, s.watermark_snapshot, pg_current_snapshot(),
               format('<digest.%%s.%%s.%%s@%%s>', s.id, c.period, substr(md5(random()::text), 1, 10), %(domain)s::text),
               %(now)s
        FROM unnest(%(ids)s::bigint[], %(periods)s::date[]) AS c (id, period)
        JOIN subscriptions s ON s.id = c.id AND s.state = 'active'
        WHERE NOT EXISTS (SELECT 1 FROM digests d WHERE d.subscription_id = s.id AND d.state IN ('pending', 'sending'))
        ON CONFLICT (subscription_id, period) DO UPDATE
        SET state = 'pending', window_start = EXCLUDED.window_start, window_end = EXCLUDED.window_end,
            start_snapshot = EXCLUDED.start_snapshot, end_snapshot = EXCLUDED.end_snapshot, items = NULL,
            attempts = 0, uncertain = false, next_attempt_at = EXCLUDED.next_attempt_at, last_error = NULL
        WHERE digests.state = 'empty' AND (%(force)s OR digests.next_attempt_at <= %(now)s)
        RETURNING id, subscription_id
    """, {"ids": list(periods), "periods": list(periods.values()), "now": now, "domain": domain,
          "force": force}).fetchall()
    return [(r[0], r[1]) for r in rows]


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
           items: int | None = None, error: str | None = None, recheck_at: datetime | None = None) -> bool:
    """Record 'sent', 'empty' or 'failed' under our lease; delivered ones (and empty ones: there
    was nothing to carry) move the watermark to the window's end. An empty one may be claimed
    again from `recheck_at`. One statement: it runs once per message, right after the server's reply."""
    row = conn.execute("""
        WITH done AS (
            UPDATE digests SET state = %(state)s, items = coalesce(%(items)s, items), last_error = %(error)s,
                   sent_at = CASE WHEN %(state)s = 'sent' THEN %(now)s ELSE sent_at END,
                   next_attempt_at = CASE WHEN %(state)s = 'empty' THEN coalesce(%(recheck_at)s, %(now)s)
                                          ELSE next_attempt_at END,
                   lease_owner = NULL, lease_until = NULL
            WHERE id = %(id)s AND state = 'sending' AND lease_owner = %(owner)s
            RETURNING subscription_id, window_end, end_snapshot
        ), moved AS (
            UPDATE subscriptions s
            SET watermark = greatest(s.watermark, done.window_end),
                watermark_snapshot = CASE WHEN s.watermark IS NULL OR done.window_end >= s.watermark
                                          THEN done.end_snapshot ELSE s.watermark_snapshot END,
                last_error = NULL
            FROM done WHERE s.id = done.subscription_id AND %(state)s IN ('sent', 'empty')
            RETURNING s.id
        )
        SELECT (SELECT count(*) FROM done), (SELECT count(*) FROM moved)
    """, {"id": digest_id, "owner": owner, "state": state, "now": now, "items": items, "recheck_at": recheck_at,
          "error": error[:1000] if error else None}).fetchone()
    return bool(row and row[0])


def retry_later(conn: psycopg.Connection, digest_id: int, *, owner: str, at: datetime, error: str) -> bool:
    return conn.execute("""
        UPDATE digests SET state = 'pending', next_attempt_at = %(at)s, last_error = %(error)s,
               lease_owner = NULL, lease_until = NULL
        WHERE id = %(id)s AND state = 'sending' AND lease_owner = %(owner)s
    """, {"id": digest_id, "owner": owner, "at": at, "error": error[:1000]}).rowcount == 1


def _bounds(window: Window) -> tuple[sql.Composable, dict[str, Any]]:
    """The window as a condition on `posts p`, written so the arrival index bounds the scan. Not
    visible in the start snapshot means: at or after its xmax, or in flight when it was taken (its
    xip list). Its xmin is no bound worth having: one long transaction anywhere in the cluster
    holds it back."""
    if window.start_snapshot is not None:
        start = sql.SQL("(p.arrival_xid >= pg_snapshot_xmax(%(start_snapshot)s::pg_snapshot) OR p.arrival_xid = "
                        "ANY(ARRAY(SELECT pg_snapshot_xip(%(start_snapshot)s::pg_snapshot))))")
    else:
        start = sql.SQL("p.first_seen_at >= %(window_start)s")
    if window.end_snapshot is not None:
        end = sql.SQL("p.arrival_xid < pg_snapshot_xmax(%(end_snapshot)s::pg_snapshot) AND "
                      "pg_visible_in_snapshot(p.arrival_xid, %(end_snapshot)s::pg_snapshot)")
    elif window.end is not None:
        end = sql.SQL("p.first_seen_at < %(window_end)s")
    else:
        end = sql.SQL("true")  # everything committed: what this statement sees
    params = {"start_snapshot": window.start_snapshot, "window_start": window.start,
              "end_snapshot": window.end_snapshot, "window_end": window.end}
    return sql.SQL("{} AND {}").format(start, end), params


def posts_in_window(conn: psycopg.Connection, post_filter: PostFilter, window: Window, *,
                    limit: int) -> list[WindowPost]:
    """The newest `limit` posts matching the filter that arrived in the window, each with the
    count of all matches; the filter is the API's (aggregator.db.post_filters.where)."""
    condition, params = where(post_filter)
    bounds, bound_params = _bounds(window)
    statement = sql.SQL("""
        WITH hits AS (
            SELECT p.id, count(*) OVER () AS total
            FROM posts p
            WHERE {condition} AND {bounds}
            ORDER BY p.sort_at DESC, p.id DESC
            LIMIT %(limit)s
        )
        SELECT p.id, p.title, p.url, p.sort_at AS published_at, p.first_seen_at, p.summary, p.countries,
               p.primary_countries, p.topics, p.source_id, coalesce(s.name, s.title, s.url) AS source_name,
               coalesce((SELECT array_agg(coalesce(o.name, o.title, o.url) ORDER BY ps.first_seen_at, o.id)
                         FROM post_sources ps JOIN sources o ON o.id = ps.source_id
                         WHERE ps.post_id = p.id AND ps.source_id IS DISTINCT FROM p.source_id),
                        '{{}}') AS other_sources,
               h.total, p.published_at IS NULL AS date_estimated,
               (SELECT k.story_id FROM post_story_keys k WHERE k.post_id = p.id) AS story_id
        FROM hits h JOIN posts p ON p.id = h.id LEFT JOIN sources s ON s.id = p.source_id
        ORDER BY p.sort_at DESC, p.id DESC
    """).format(condition=condition, bounds=bounds)
    values: dict[str, Any] = {**params, **bound_params, "limit": limit}
    return filtered(conn.cursor(row_factory=class_row(WindowPost)), statement, values).fetchall()
