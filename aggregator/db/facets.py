"""SQL for facet counts (per country, topic, source and day) over the posts a filter selects.

Two ways to the same numbers:
- live: read the matching posts through the filter's indexes and group them four ways; cheap for
  selective filters (a rare country, country + topic, a search), slow for a third of the archive;
- rolled up: for no filter, one country or one topic, sum the monthly counts of facet_months
  (migration 0003) for whole months, and count live only what the rollup cannot answer: the
  partial months at the edges of since/until and the months changed since the last refresh.
Both give exact counts; `refresh` only decides how much has to be counted live.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import psycopg
from psycopg import sql

from aggregator.db.query import where
from aggregator.query import PostFilter

REFRESH_LOCK = 7_242_019_002  # advisory lock: one refresher at a time across processes
MAX_LIVE_MONTHS = 24  # more changed months than this: counting everything live is simpler and as fast

# Facet keys of one post: its day, countries, topics and sources, as 'd:…', 'c:…', 't:…', 's:…'.
_FACET_KEYS = """
    ARRAY['d:' || to_char(p.published_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')]
    || array(SELECT 'c:' || c FROM unnest(p.countries) AS c)
    || array(SELECT 't:' || t FROM unnest(p.topics) AS t)
    || array(SELECT 's:' || ps.source_id FROM post_sources ps WHERE ps.post_id = p.id)
"""


def rollup_dim(f: PostFilter) -> str | None:
    """The facet_months dimension that answers this filter alone, or None when only live counting can."""
    if f.q or f.langs or f.sources or f.regions or len(f.countries) + len(f.topics) > 1:
        return None
    if f.countries:
        return ("p:" if f.role == "primary" else "c:") + f.countries[0]
    return "t:" + f.topics[0] if f.topics else ""


def _month(moment: datetime) -> date:
    return date(moment.year, moment.month, 1)


def _next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def _at(month: date) -> datetime:
    return datetime(month.year, month.month, 1, tzinfo=UTC)


def _whole_months(f: PostFilter) -> tuple[date, date]:
    """[first, end) of the whole months inside [since, until)."""
    first = date.min if f.since is None else _month(f.since)
    if f.since is not None and f.since != _at(first):
        first = _next_month(first)
    end = date.max if f.until is None else _month(f.until)
    return first, max(first, end)


def _ranges_condition(ranges: Sequence[tuple[datetime, datetime]]) -> tuple[sql.Composable, dict[str, Any]]:
    """published_at in any of these [start, end) ranges: an OR of index range scans."""
    parts, params = [], {}
    for i, (start, end) in enumerate(ranges):
        parts.append(sql.SQL("(p.published_at >= {} AND p.published_at < {})").format(
            sql.Placeholder(f"r{i}s"), sql.Placeholder(f"r{i}e")))
        params[f"r{i}s"], params[f"r{i}e"] = start, end
    return sql.SQL("({})").format(sql.SQL(" OR ").join(parts)), params


def live_sql(f: PostFilter, ranges: Sequence[tuple[datetime, datetime]] | None = None,
             ) -> tuple[sql.Composed, dict[str, Any]]:
    """Facet keys counted over the matching posts (optionally only those published in `ranges`)."""
    condition, params = where(f)
    if ranges is not None:
        in_ranges, range_params = _ranges_condition(ranges)
        condition = sql.SQL("{} AND {}").format(condition, in_ranges)
        params.update(range_params)
    statement = sql.SQL("SELECT key, count(*) FROM posts p, unnest({keys}) AS key WHERE {condition} GROUP BY key")
    return statement.format(keys=sql.SQL(_FACET_KEYS), condition=condition), params


def counts(conn: psycopg.Connection, f: PostFilter, *, days: int) -> Counter[str]:
    """Exact facet counts ('c:KZ' -> posts, …) for the filter, with at least the newest `days` day
    counts (the caller keeps the newest). Run it in a REPEATABLE READ transaction: the dirty months
    and the rollup must be read from one snapshot."""
    dim = rollup_dim(f)
    dirty = [] if dim is None else [r[0] for r in conn.execute("SELECT DISTINCT month FROM facet_dirty_months")]
    if dim is None or len(dirty) > MAX_LIVE_MONTHS:
        return _fetch(conn, *live_sql(f))
    first, end = _whole_months(f)
    live = [(_at(m), _at(_next_month(m))) for m in dirty if first <= m < end]
    if f.since is not None:  # the partial month before the first whole one
        live.append((f.since, min(_at(first), f.until or _at(first))))
    if f.until is not None:  # and after the last
        live.append((max(_at(end), f.since or _at(end)), f.until))
    live = [(start, stop) for start, stop in live if start < stop]
    total = _fetch(conn, *live_sql(f, live)) if live else Counter()
    params = {"dim": dim, "first": first, "end": end, "dirty": dirty, "days": days}
    rolled = _ALL_TIME if f.since is None and f.until is None else _MONTHS
    total.update({key: int(n) for key, n in conn.execute(_NEWEST_DAYS.format(rolled=rolled), params)})
    return total


# Unbounded: the all-time rows, less what they hold of months changed since (counted live instead).
_ALL_TIME = sql.SQL("""
    SELECT facet, sum(CASE WHEN month = '-infinity' THEN posts ELSE -posts END) AS n FROM facet_months
    WHERE dim = %(dim)s AND (month = '-infinity' OR month = ANY(%(dirty)s::date[]))
    GROUP BY facet
""")
_MONTHS = sql.SQL("""
    SELECT facet, sum(posts) AS n FROM facet_months
    WHERE dim = %(dim)s AND month >= %(first)s AND month < %(end)s AND NOT month = ANY(%(dirty)s::date[])
    GROUP BY facet
""")
# Of the day counts only the newest `days` can be shown: the rest (years of them) never leave the database.
_NEWEST_DAYS = sql.SQL("""
    WITH rolled AS ({rolled})
    SELECT facet, n FROM rolled WHERE n > 0 AND facet NOT LIKE 'd:%%'
    UNION ALL
    (SELECT facet, n FROM rolled WHERE n > 0 AND facet LIKE 'd:%%' ORDER BY facet DESC LIMIT %(days)s)
""")


def _fetch(conn: psycopg.Connection, statement: sql.Composable, params: dict[str, Any]) -> Counter[str]:
    return Counter({key: int(n) for key, n in conn.execute(statement, params).fetchall()})


def source_names(conn: psycopg.Connection, ids: Sequence[int]) -> dict[int, str]:
    rows = conn.execute("SELECT id, coalesce(name, title, url) FROM sources WHERE id = ANY(%(ids)s)",
                        {"ids": list(ids)}).fetchall()
    return {source_id: name for source_id, name in rows}


_REBUILD_MONTH = sql.SQL("""
    INSERT INTO facet_months (month, dim, facet, posts)
    SELECT %(month)s, dim, key, count(*)
    FROM posts p,
         unnest(ARRAY['']::text[]
                || array(SELECT 'c:' || c FROM unnest(p.countries) AS c)
                || array(SELECT 'p:' || c FROM unnest(p.primary_countries) AS c)
                || array(SELECT 't:' || t FROM unnest(p.topics) AS t)) AS dim,
         unnest({keys}) AS key
    WHERE p.published_at >= %(start)s AND p.published_at < %(end)s
    GROUP BY dim, key
""").format(keys=sql.SQL(_FACET_KEYS))


def refresh(conn: psycopg.Connection, *, max_months: int | None = 12) -> int:
    """Recompute the rollup of changed months (at most `max_months`, oldest changes kept for the
    next call); returns how many. Another process refreshing at the same time: returns 0 at once."""
    locked = conn.execute("SELECT pg_try_advisory_xact_lock(%(key)s)", {"key": REFRESH_LOCK}).fetchone()
    if not locked or not locked[0]:
        return 0
    months = [r[0] for r in conn.execute(
        "SELECT DISTINCT month FROM facet_dirty_months ORDER BY month DESC LIMIT %(n)s", {"n": max_months})]
    if not months:
        return 0
    conn.execute("DELETE FROM facet_dirty_months WHERE month = ANY(%(m)s)", {"m": months})
    conn.execute(_ADD_TO_ALL_TIME, {"m": months, "sign": -1})
    conn.execute("DELETE FROM facet_months WHERE month = ANY(%(m)s)", {"m": months})
    for month in months:
        conn.execute(_REBUILD_MONTH, {"month": month, "start": _at(month), "end": _at(_next_month(month))})
    conn.execute(_ADD_TO_ALL_TIME, {"m": months, "sign": 1})
    conn.execute("DELETE FROM facet_months WHERE month = '-infinity' AND posts = 0")
    return len(months)


# The all-time rows follow the months: a month's old counts are taken out before it is rebuilt,
# its new ones added after.
_ADD_TO_ALL_TIME = """
    INSERT INTO facet_months (month, dim, facet, posts)
    SELECT '-infinity', dim, facet, %(sign)s * sum(posts) FROM facet_months WHERE month = ANY(%(m)s)
    GROUP BY dim, facet
    ON CONFLICT (dim, month, facet) DO UPDATE SET posts = facet_months.posts + EXCLUDED.posts
"""
