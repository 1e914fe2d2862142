"""SQL for trend charts: posts per day of a country, topic or region, split by topic, country or
(a region) member country or place, read from the facet rollup (aggregator.db.facets) and exact
the same way facet counts are: whole months that have not changed since the last refresh come from
facet_months, changed months are counted live.

    daily(conn, "country", "KZ", start, end)
        -> totals {date: posts mentioning KZ}, split {(date, topic): posts mentioning KZ with that topic}
    daily(conn, "region", "north-caucasus", start, end)
        -> totals {date: posts naming it or one of its places}, split {(date, place): posts naming that place}
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.range import Range

from aggregator.db.facets import dirty_months
from aggregator.db.post_filters import filtered

# kind -> (the rollup dimension of the totals, of the split, the array a post's codes are in, the split's array)
_DIMS = {"country": ("c:", "xc:", "countries", "topics"), "topic": ("t:", "xt:", "topics", "countries"),
         "region": ("r:", "xr:", "", "")}


@dataclass(slots=True)
class Daily:
    totals: Counter[date] = field(default_factory=Counter)
    split: Counter[tuple[date, str]] = field(default_factory=Counter)


def _month(day: date) -> date:
    return day.replace(day=1)


def _months(start: date, end: date) -> list[date]:
    """First days of the months that overlap [start, end)."""
    months, month = [], _month(start)
    while month < end:
        months.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    return months


def daily(conn: psycopg.Connection, kind: str, code: str, start: date, end: date) -> Daily:
    """Posts per UTC day in [start, end) of one country (mentioning it), topic or region, and the same
    per day split by the other kind (a region: by its member countries, or places for a region that
    is part of a country). Run it in one REPEATABLE READ transaction, as facet counts are."""
    total_prefix, split_prefix, own, other = _DIMS[kind]
    months = _months(start, end)
    dirty = set(dirty_months(conn))
    clean = [m for m in months if m not in dirty]
    live = [m for m in months if m in dirty]
    result = Daily()
    params: dict[str, Any] = {"total": total_prefix + code, "split": split_prefix + code, "months": clean,
                              "first": start.isoformat(), "end": end.isoformat()}
    for dim, facet, posts in conn.execute(_ROLLED, params):
        _add(result, dim == params["total"], facet, posts)
    if live:
        ranges = [Range(_midnight(m), _midnight((m + timedelta(days=32)).replace(day=1)), "[)") for m in live]
        statement = _LIVE_REGION if kind == "region" else _LIVE.format(own=sql.Identifier(own),
                                                                        other=sql.Identifier(other))
        for is_total, facet, posts in filtered(conn.cursor(), statement, {"code": code, "ranges": ranges, **params}):
            _add(result, is_total, facet, posts)
    return result


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC)


def _add(result: Daily, is_total: bool, facet: str, posts: int) -> None:
    if is_total:  # 'd:2025-01-06'
        result.totals[date.fromisoformat(facet[2:])] += int(posts)
    else:  # '2025-01-06|military'
        day, _, key = facet.partition("|")
        result.split[(date.fromisoformat(day), key)] += int(posts)


# Day facets of the totals' dimension and every facet of the split's, for the clean months in range.
_ROLLED = """
    SELECT dim, facet, posts FROM facet_months
    WHERE dim = %(total)s AND month = ANY(%(months)s::date[])
      AND facet >= 'd:' || %(first)s AND facet < 'd:' || %(end)s
    UNION ALL
    SELECT dim, facet, posts FROM facet_months
    WHERE dim = %(split)s AND month = ANY(%(months)s::date[])
      AND facet >= %(first)s AND facet < %(end)s
"""

# The same, counted from the posts of the changed months (each range one month of them).
_LIVE = sql.SQL("""
    WITH chosen AS (
        SELECT p.sort_at, p.{other} AS other FROM posts p, unnest(%(ranges)s::tstzrange[]) AS r
        WHERE p.{own} @> ARRAY[%(code)s]::text[] AND p.sort_at <@ r
          AND p.sort_at >= %(first)s::date AND p.sort_at < %(end)s::date
    )
    SELECT true, 'd:' || to_char(sort_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), count(*) FROM chosen GROUP BY 2
    UNION ALL
    SELECT false, to_char(sort_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') || '|' || o, count(*)
    FROM chosen, unnest(other) AS o GROUP BY 2
""")

# A region's: its posts and their members by the rollup's definitions (facet_regions), as it counts them.
_LIVE_REGION = sql.SQL("""
    WITH chosen AS (
        SELECT p.sort_at, CASE WHEN r.places = '{}' THEN ARRAY(SELECT unnest(p.countries) INTERSECT
                                                               SELECT unnest(r.countries))
                               ELSE ARRAY(SELECT unnest(p.places) INTERSECT SELECT unnest(r.places)) END AS other
        FROM facet_regions r, posts p, unnest(%(ranges)s::tstzrange[]) AS t
        WHERE r.code = %(code)s AND p.sort_at <@ t
          AND CASE WHEN r.places = '{}' THEN p.countries && r.countries ELSE p.places && r.places END
          AND p.sort_at >= %(first)s::date AND p.sort_at < %(end)s::date
    )
    SELECT true, 'd:' || to_char(sort_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), count(*) FROM chosen GROUP BY 2
    UNION ALL
    SELECT false, to_char(sort_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') || '|' || o, count(*)
    FROM chosen, unnest(other) AS o GROUP BY 2
""")
