"""SQL for facet counts (per country, topic, source and day) over the posts a filter selects.

Two ways to the same numbers:
- live: read the matching posts through the filter's indexes and group them four ways; cheap for
  selective filters (a rare country, a search), slow for a third of the archive;
- rolled up: for no filter, one country, one topic, or one country and one topic (migration 0020),
  sum the monthly counts of facet_months (migration 0003) for whole months, and count live only
  what the rollup cannot answer: the partial months at the edges of since/until and the months
  changed since the last refresh.
Both give exact counts; `refresh` only decides how much has to be counted live. The same monthly
rebuild also keeps the trend dimensions that aggregator.db.trends reads (posts per day and topic of
a country, per day and country of a topic, per day and member place or country of a region).

Regions are facet keys of every dimension ('r:central-asia': the reader's sidebar counts them) and
have dimensions of their own holding only their posts per day (a region page's trend), made with
the definitions in facet_regions (migration 0014), which `sync_regions` keeps equal to the taxonomy's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from aggregator.db.post_filters import filtered, where
from aggregator.query import PostFilter

if TYPE_CHECKING:
    from aggregator.tagging import Taxonomy

REFRESH_LOCK = 7_242_019_002  # advisory lock: one refresher at a time across processes
Regions = Mapping[str, tuple[Sequence[str], Sequence[str]]]  # region code -> (countries, places)
MAX_LIVE_MONTHS = 24  # more changed months than this: counting everything live is simpler and as fast

# The regions of one post `p`: those of whole countries it is about, those that are part of a country
# whose places it names (the filter's rule: aggregator.db.post_filters).
_REGIONS_OF_POST = """
    array(SELECT 'r:' || r.code FROM facet_regions r
          WHERE CASE WHEN r.places = '{}' THEN p.countries && r.countries ELSE p.places && r.places END)
"""

# Facet keys of one post: its day, language, countries, topics and sources, as 'd:…', 'l:…', 'c:…', 't:…', 's:…'.
_FACET_KEYS = """
    ARRAY['d:' || to_char(p.sort_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), 'l:' || coalesce(p.lang, 'und')]
    || array(SELECT 'c:' || c FROM unnest(p.countries) AS c)
    || array(SELECT 't:' || t FROM unnest(p.topics) AS t)
    || array(SELECT 's:' || ps.source_id FROM post_sources ps WHERE ps.post_id = p.id)
"""
# ... and its regions, 'r:…': the reader's sidebar counts them. They nearly triple the cost of counting live
# (a lookup of every region per post), so the API's facets, which do not show them, count without.
_FACET_KEYS_WITH_REGIONS = _FACET_KEYS + " || " + _REGIONS_OF_POST


def rollup_dim(f: PostFilter) -> str | None:
    """The facet_months dimension that answers this filter alone, or None when only live counting can.
    A country and a topic together (an analyst's most usual view) have a dimension of their own,
    for the posts that mention both: without it, a page sampled the newest 500 of their matches on
    every request, 30 ms of the server's time on a million posts."""
    if f.q or f.langs or f.sources or f.regions or f.places or len(f.countries) > 1 or len(f.topics) > 1:
        return None
    if f.countries and f.topics:
        return None if f.role == "primary" else f"ct:{f.countries[0]}|{f.topics[0]}"
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
    """sort_at in any of these [start, end) ranges: an OR of index range scans."""
    parts, params = [], {}
    for i, (start, end) in enumerate(ranges):
        parts.append(sql.SQL("(p.sort_at >= {} AND p.sort_at < {})").format(
            sql.Placeholder(f"r{i}s"), sql.Placeholder(f"r{i}e")))
        params[f"r{i}s"], params[f"r{i}e"] = start, end
    return sql.SQL("({})").format(sql.SQL(" OR ").join(parts)), params


def live_sql(f: PostFilter, ranges: Sequence[tuple[datetime, datetime]] | None = None, *, regions: bool = False,
             ) -> tuple[sql.Composed, dict[str, Any]]:
    """Facet keys counted over the matching posts (optionally only those published in `ranges`; with
    `regions`, their regions too)."""
    condition, params = where(f)
    if ranges is not None:
        in_ranges, range_params = _ranges_condition(ranges)
        condition = sql.SQL("{} AND {}").format(condition, in_ranges)
        params.update(range_params)
    statement = sql.SQL("SELECT key, count(*) FROM posts p, unnest({keys}) AS key WHERE {condition} GROUP BY key")
    keys = _FACET_KEYS_WITH_REGIONS if regions else _FACET_KEYS
    return statement.format(keys=sql.SQL(keys), condition=condition), params


# Facet counts of the sampled posts (`chosen`): one aggregate per kind rather than an array of keys built
# per post. Regions are not matched here: the distinct sets of countries and places come back as 'g:KZ,RU;osh'
# keys, the regions' definitions as 'R:fergana-valley;KG,TJ,UZ;osh,batken' keys, and _regions_of_groups
# applies _REGIONS_OF_POST's rule to them. Matching each set against each region in SQL (an array overlap
# per pair) cost more than that whole exchange: 4.6-5.3 against 3.6-4.4 ms for a search's 500 posts.
# Arrays unnested in the select list rather than joined with unnest() as a function scan per post: 0.45 ms less.
# (Codes are the taxonomy's: letters, digits and hyphens, never ',' or ';'.)
_COUNT_CHOSEN = """
    SELECT 'l:' || coalesce(lang, 'und'), count(*) FROM chosen GROUP BY 1
    UNION ALL SELECT 'c:' || c, count(*) FROM (SELECT unnest(countries) AS c FROM chosen) AS unnested GROUP BY c
    UNION ALL SELECT 't:' || t, count(*) FROM (SELECT unnest(topics) AS t FROM chosen) AS unnested GROUP BY t
    UNION ALL {sources}
    UNION ALL SELECT 'g:' || array_to_string(countries, ',') || ';' || array_to_string(places, ','), count(*)
              FROM chosen GROUP BY 1
    UNION ALL SELECT 'R:' || code || ';' || array_to_string(countries, ',') || ';' || array_to_string(places, ','), 0
              FROM facet_regions
"""
# A sample's sources: those each post's links name, or (recent_search, migration 0026) its own array.
_SOURCES_LINKED = sql.SQL("SELECT 's:' || ps.source_id, count(*) FROM chosen "
                          "JOIN post_sources ps ON ps.post_id = chosen.id GROUP BY 1")
_SOURCES_HELD = sql.SQL("SELECT 's:' || s, count(*) FROM (SELECT unnest(sources) AS s FROM chosen) AS unnested "
                        "GROUP BY s")


def _regions_of_groups(found: Counter[str]) -> Counter[str]:
    """The counts with the 'g:' and 'R:' keys of _COUNT_CHOSEN replaced by 'r:' counts: a set of
    countries and places is in a region of whole countries when it names one of them, in a region
    that is part of a country when it names one of its places; its posts count once per region."""
    counts = Counter({key: n for key, n in found.items() if key[0] not in "gR"})  # no other kind starts so
    index = _region_index(frozenset(key for key in found if key[0] == "R"))
    regions: dict[str, int] = {}
    for key, n in found.items():
        if key[0] == "g":
            for region in index.regions(key):
                regions[region] = regions.get(region, 0) + n
    counts.update(regions)
    return counts


class _RegionIndex:
    """The regions' members, and the regions of each set of countries and places met so far (the
    same sets recur from page to page: a few hundred in a sample of 500 posts, far fewer overall)."""

    MEMO = 10_000  # sets remembered, at most

    def __init__(self, definitions: frozenset[str]) -> None:
        self.by_country: dict[str, list[str]] = {}
        self.by_place: dict[str, list[str]] = {}
        for key in definitions:
            code, countries, places = key[2:].split(";")
            members, index = (places, self.by_place) if places else (countries, self.by_country)
            for member in members.split(","):
                index.setdefault(member, []).append("r:" + code)
        self.memo: dict[str, tuple[str, ...]] = {}

    def regions(self, group: str) -> tuple[str, ...]:
        found = self.memo.get(group)
        if found is None:
            countries, places = group[2:].split(";")
            codes = {code for c in countries.split(",") for code in self.by_country.get(c, ())} if countries else set()
            if places:
                codes.update(code for p in places.split(",") for code in self.by_place.get(p, ()))
            found = tuple(codes)
            if len(self.memo) < self.MEMO:
                self.memo[group] = found
        return found


@lru_cache(maxsize=4)
def _region_index(definitions: frozenset[str]) -> _RegionIndex:
    return _RegionIndex(definitions)


def sampled(conn: psycopg.Connection, f: PostFilter, *, newest: int) -> Counter[str]:
    """Facet counts over the newest `newest` matching posts. Where the rollup does not answer a
    filter (words, a combination; `rollup_answers`), counting every match of a million posts takes
    seconds; a page shows the mix of the newest matches instead, and says so when the sample was full.

    The newest matches are found by walking the date index, testing each post: cheap for tag
    arrays, not for words (each test reads the post's search vector: 150 ms to find the newest 500
    posts with a word in one of 30). A search therefore first takes its matches among the newest
    posts (recent_search, migrations 0023 and 0025: about 20,000, with a word index of their own, 0.1
    ms for a word in 3 % of them, and every column the filter tests); only when they are too few (a
    rarer word, whose index finds it cheaply everywhere) is the whole archive asked."""
    condition, params = where(f)
    if f.q:  # the same condition on recent_search's rows, which have every column a filter tests
        found = _regions_of_groups(_fetch(conn, _SAMPLE_OF_RECENT.format(
            condition=condition, count=sql.SQL(_COUNT_CHOSEN).format(sources=_SOURCES_HELD)),
            {**params, "newest": newest}))
        if post_total(found) >= newest:
            return found
    return _regions_of_groups(_fetch(conn, _SAMPLE.format(
        condition=condition, count=sql.SQL(_COUNT_CHOSEN).format(sources=_SOURCES_LINKED)),
        {**params, "newest": newest}))


# Every post has exactly one language key ('l:…', 'und' for none): their counts add up to the posts.
_ONE_PER_POST = "l"


def post_total(counts: Counter[str]) -> int:
    """Posts the facet counts cover."""
    prefix = f"{_ONE_PER_POST}:"
    return sum(n for key, n in counts.items() if key.startswith(prefix))


def by_kind(counts: Mapping[str, int]) -> dict[str, dict[str, int]]:
    """The positive counts by kind of key: {'c': {'KZ': 12, …}, 's': {'42': 7, …}, …}. A page's
    filter lists, map, busiest sources and total each read one kind of some 350 counts (300 of them
    sources): walking them all for each took 0.2 ms of a page, five times this one pass."""
    kinds: dict[str, dict[str, int]] = {}
    for key, n in counts.items():
        if n > 0:
            kind, _, code = key.partition(":")
            if (codes := kinds.get(kind)) is None:
                kinds[kind] = codes = {}
            codes[code] = n
    return kinds


def kinds_total(kinds: Mapping[str, Mapping[str, int]]) -> int:
    """post_total of counts split by_kind."""
    return sum(kinds.get(_ONE_PER_POST, {}).values())


_SAMPLE = sql.SQL("""
    WITH chosen AS (SELECT p.id, p.lang, p.countries, p.topics, p.places FROM posts p
                    WHERE {condition}
                    ORDER BY p.sort_at DESC, p.id DESC LIMIT %(newest)s)
    {count}
""")
# The newest posts' rows (migrations 0023, 0025, 0026) read as `posts p`: they carry every column a
# filter tests and the counts need, so the words are found through their own word index and nothing
# is looked up in posts or post_sources (500 look-ups of its rows were a third of a search's counts,
# 500 of the post's sources a third of what was left).
_SAMPLE_OF_RECENT = sql.SQL("""
    WITH chosen AS (SELECT p.id, p.lang, p.countries, p.topics, p.places, p.sources
                    FROM (SELECT r.post_id AS id, r.sort_at, r.search, r.lang, r.countries, r.primary_countries,
                                 r.topics, r.places, r.sources
                          FROM recent_search r) AS p
                    WHERE {condition} AND p.sort_at >= (SELECT floor FROM recent_search_floor)
                    ORDER BY p.sort_at DESC, p.id DESC LIMIT %(newest)s)
    {count}
""")


def dirty_months(conn: psycopg.Connection) -> list[date]:
    """The months changed since the rollup last counted them (counted live until it has)."""
    return [r[0] for r in conn.execute("SELECT DISTINCT month FROM facet_dirty_months")]


def rollup_answers(f: PostFilter, dirty: Sequence[date]) -> bool:
    """Whether `counts` answers this filter from the rollup, counting live only a few changed months.
    It does not when its dimension is not rolled up, or when more than MAX_LIVE_MONTHS months changed
    (after a change of region definitions, every month has until the refresh has rebuilt them):
    then exact counts mean counting every match, seconds for a common one in a million posts."""
    return rollup_dim(f) is not None and len(dirty) <= MAX_LIVE_MONTHS


def counts(conn: psycopg.Connection, f: PostFilter, *, days: int, regions: bool = False,
           dirty: Sequence[date] | None = None) -> Counter[str]:
    """Exact facet counts ('c:KZ' -> posts, …) for the filter, with at least the newest `days` day
    counts (the caller keeps the newest; 0: none needed), and with `regions` the regions' ('r:central-asia').
    Run it in a REPEATABLE READ transaction: the dirty months and the rollup must be read from one snapshot
    (`dirty`: the caller's `dirty_months`, read in that transaction)."""
    dim = rollup_dim(f)
    if dirty is None:
        dirty = [] if dim is None else dirty_months(conn)
    if not rollup_answers(f, dirty):
        return _fetch(conn, *live_sql(f, regions=regions))
    first, end = _whole_months(f)
    live = [(_at(m), _at(_next_month(m))) for m in dirty if first <= m < end]
    if f.since is not None:  # the partial month before the first whole one
        live.append((f.since, min(_at(first), f.until or _at(first))))
    if f.until is not None:  # and after the last
        live.append((max(_at(end), f.since or _at(end)), f.until))
    live = [(start, stop) for start, stop in live if start < stop]
    total = _fetch(conn, *live_sql(f, live, regions=regions)) if live else Counter()
    params = {"dim": dim, "first": first, "end": end, "dirty": list(dirty), "days": days}
    unbounded = f.since is None and f.until is None
    statement = _ROLLED.format(facets=_ALL_TIME if unbounded else _MONTHS,
                               days=_DAYS_ALL_TIME if unbounded else _DAYS_MONTHS)
    total.update(dict(conn.execute(statement, params).fetchall()))  # sums of integers: int already
    return total


# Facets other than days. Unbounded: the all-time rows, less what they hold of months changed since
# (counted live instead). Each part is one range of the (dim, month, facet) key: a condition on
# month that the index cannot use (month = '-infinity' OR month = ANY(...)) made PostgreSQL read
# every month of the dimension, 15 ms instead of 0.7 for the whole archive.
# The all-time rows are read as two ranges around the days ('d:…', the only keys starting with d;
# every key is a lowercase letter and a colon): a dimension has a row per day of its archive, about
# 2,900 of the 3,250 rows of one country and topic, which a filter on each row read and dropped
# (0.7 ms of a page's 3 ms in PostgreSQL).
_ALL_TIME = sql.SQL("""
    SELECT facet, sum(n) FROM (
        SELECT facet, posts AS n FROM facet_months
        WHERE dim = %(dim)s AND month = '-infinity' AND facet < 'd'
        UNION ALL
        SELECT facet, posts FROM facet_months
        WHERE dim = %(dim)s AND month = '-infinity' AND facet >= 'e'
        UNION ALL
        SELECT facet, -posts FROM facet_months
        WHERE dim = %(dim)s AND month = ANY(%(dirty)s::date[]) AND facet NOT LIKE 'd:%%'
    ) AS parts
    GROUP BY facet HAVING sum(n) > 0
""")
_MONTHS = sql.SQL("""
    SELECT facet, sum(posts) FROM facet_months
    WHERE dim = %(dim)s AND month >= %(first)s AND month < %(end)s AND NOT month = ANY(%(dirty)s::date[])
      AND facet NOT LIKE 'd:%%'
    GROUP BY facet HAVING sum(posts) > 0
""")
# Of the day counts only the newest `days` can be shown: the rest (years of them) never leave the
# database. A day is counted in its month's rows only, so a changed month's days are simply left
# out (they are counted live); the newest are read backwards along the key.
_DAYS_ALL_TIME = sql.SQL("""
    SELECT facet, posts FROM facet_months
    WHERE dim = %(dim)s AND month = '-infinity' AND facet LIKE 'd:%%' AND posts > 0
      AND NOT (substr(facet, 3, 7) || '-01')::date = ANY(%(dirty)s::date[])
    ORDER BY facet DESC LIMIT %(days)s
""")
_DAYS_MONTHS = sql.SQL("""
    SELECT facet, posts FROM facet_months
    WHERE dim = %(dim)s AND month >= %(first)s AND month < %(end)s AND NOT month = ANY(%(dirty)s::date[])
      AND facet LIKE 'd:%%' AND posts > 0
    ORDER BY facet DESC LIMIT %(days)s
""")
_ROLLED = sql.SQL("({facets}) UNION ALL ({days})")


def _fetch(conn: psycopg.Connection, statement: sql.Composable, params: dict[str, Any]) -> Counter[str]:
    return Counter(dict(filtered(conn.cursor(), statement, params).fetchall()))  # counts: int already


def source_names(conn: psycopg.Connection, ids: Sequence[int] | None) -> dict[int, str]:
    """These sources' names (None: every source's)."""
    if ids is None:
        return dict(conn.execute("SELECT id, coalesce(name, title, url) FROM sources").fetchall())
    if not ids:
        return {}
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
                || array(SELECT 't:' || t FROM unnest(p.topics) AS t)
                || array(SELECT 'ct:' || c || '|' || t FROM unnest(p.countries) AS c, unnest(p.topics) AS t)) AS dim,
         unnest({keys}) AS key
    WHERE p.sort_at >= %(start)s AND p.sort_at < %(end)s
    GROUP BY dim, key
    UNION ALL
    SELECT %(month)s, 'r:' || r.code, 'd:' || to_char(p.sort_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), count(*)
    FROM posts p JOIN facet_regions r
         ON CASE WHEN r.places = '{{}}' THEN p.countries && r.countries ELSE p.places && r.places END
    WHERE p.sort_at >= %(start)s AND p.sort_at < %(end)s
    GROUP BY 2, 3
    UNION ALL
    SELECT %(month)s, 'xc:' || c, to_char(p.sort_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') || '|' || t, count(*)
    FROM posts p, unnest(p.countries) AS c, unnest(p.topics) AS t
    WHERE p.sort_at >= %(start)s AND p.sort_at < %(end)s
    GROUP BY 2, 3
    UNION ALL
    SELECT %(month)s, 'xt:' || t, to_char(p.sort_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') || '|' || c, count(*)
    FROM posts p, unnest(p.topics) AS t, unnest(p.countries) AS c
    WHERE p.sort_at >= %(start)s AND p.sort_at < %(end)s
    GROUP BY 2, 3
    UNION ALL
    SELECT %(month)s, 'xr:' || r.code, to_char(p.sort_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') || '|' || m, count(*)
    FROM posts p, facet_regions r,
         unnest(CASE WHEN r.places = '{{}}' THEN p.countries ELSE p.places END) AS m
    WHERE p.sort_at >= %(start)s AND p.sort_at < %(end)s
      AND m = ANY(CASE WHEN r.places = '{{}}' THEN r.countries ELSE r.places END)
    GROUP BY 2, 3
""").format(keys=sql.SQL(_FACET_KEYS_WITH_REGIONS))


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


def region_definitions(taxonomy: Taxonomy) -> dict[str, tuple[Sequence[str], Sequence[str]]]:
    """Each region's countries and, for a region that is part of a country, its places (and theirs)."""
    return {code: (sorted(region.countries), sorted(taxonomy.region_places.get(code, ())))
            for code, region in taxonomy.regions.items()}


def sync_regions(conn: psycopg.Connection, regions: Regions) -> bool:
    """Make facet_regions hold these definitions (code -> (countries, places)); returns whether they
    changed. A change marks every rolled-up month as changed: its region counts were made with the
    old definitions. Waits for a refresh in progress, which reads the table."""
    wanted = {code: (sorted(countries), sorted(places)) for code, (countries, places) in regions.items()}
    stored = {code: (list(countries), list(places)) for code, countries, places in
              conn.execute("SELECT code, countries, places FROM facet_regions")}
    if stored == wanted:
        return False
    conn.execute("SELECT pg_advisory_xact_lock(%(key)s)", {"key": REFRESH_LOCK})
    conn.execute("DELETE FROM facet_regions")
    with conn.cursor().copy("COPY facet_regions (code, countries, places) FROM STDIN") as copy:
        for code, (countries, places) in sorted(wanted.items()):
            copy.write_row((code, countries, places))
    conn.execute("INSERT INTO facet_dirty_months SELECT DISTINCT month FROM facet_months WHERE month <> '-infinity'")
    return True


# The all-time rows follow the months: a month's old counts are taken out before it is rebuilt,
# its new ones added after. The trend dimensions ('xc:', 'xt:', 'xr:': per day and topic, country or
# place, read by aggregator.db.trends) are only ever read by month, so they get no all-time rows.
_ADD_TO_ALL_TIME = """
    INSERT INTO facet_months (month, dim, facet, posts)
    SELECT '-infinity', dim, facet, %(sign)s * sum(posts) FROM facet_months
    WHERE month = ANY(%(m)s) AND dim NOT LIKE 'x%%'
    GROUP BY dim, facet
    ON CONFLICT (dim, month, facet) DO UPDATE SET posts = facet_months.posts + EXCLUDED.posts
"""
