"""SQL for reading posts: the filtered, keyset-paginated list, one post, facets, taxonomy counts.

Every reader (REST API, filtered feeds, digests) selects posts with one PostFilter, turned into a
WHERE clause here with psycopg.sql: user values only ever travel as named parameters.
Each condition is written so that an index can answer it: the GIN indexes on posts.countries /
primary_countries / topics / search, the (source_id, post_id) index of post_sources, and the
(sort_at DESC, id DESC) index that makes keyset pages cheap at any depth.

Posts are ordered, paged and bounded by since/until on `sort_at`: the feed's date, else the time the
post was first seen (an undated post is placed by its arrival, which never changes).
`published_at` is the feed's date as given, NULL when it gave none: `date_estimated`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from functools import cache
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import BaseRowFactory, RowMaker, args_row, class_row

from aggregator.query import Cursor, PostFilter, PostQuery

# posts.search indexes each post with its language's configuration (migration 0011): a query is parsed
# with each of them and the distinct results OR-ed (search_query, migration 0022), so "Казахстан" finds
# "Казахстане" in Russian posts, "sanction" finds "sanctions" in English ones, and a Kazakh word finds
# itself in a 'simple' post.
_TSQUERY = sql.SQL("search_query(%(q)s)")
_RANK = sql.SQL("ts_rank(p.search, {}, 1)").format(_TSQUERY)  # 1: divided by 1 + log(length)


@dataclass(slots=True)
class PostRow:
    id: int
    title: str
    url: str | None
    author: str | None
    published_at: datetime | None  # as the feed gave it
    sort_at: datetime  # published_at, else first_seen_at: what the post is shown and ordered by
    updated_at: datetime | None
    summary: str
    lang: str | None
    places: list[str]
    text: str | None
    source_id: int | None
    source_name: str | None
    source_url: str | None
    rank: float | None
    story_id: int | None = None  # the story the post is in (stories: one event, many outlets)
    story_sources: int | None = None  # how many sources that story has
    # the codes of its primary countries, topics and places, strongest first (list_posts' `tags`), else None
    primary_tags: list[str] | None = None
    topic_tags: list[str] | None = None
    place_tags: list[str] | None = None


@dataclass(slots=True)
class PostDetailRow:
    id: int
    title: str
    url: str | None
    author: str | None
    published_at: datetime | None
    sort_at: datetime
    updated_at: datetime | None
    summary: str
    lang: str | None
    places: list[str]
    text: str
    html: str
    categories: list[str]
    first_seen_at: datetime
    changed_at: datetime
    taxonomy_version: str | None
    story_id: int | None = None


@dataclass(slots=True)
class TagRow:
    post_id: int
    kind: str
    code: str
    role: str | None
    score: float
    evidence: list[dict[str, Any]] | None


@dataclass(slots=True)
class LinkedSource:
    id: int
    name: str
    url: str
    first_seen_at: datetime


def where(f: PostFilter) -> tuple[sql.Composable, dict[str, Any]]:
    """The filter as a WHERE condition on `posts p`, with its parameters."""
    conds: list[sql.Composable] = []
    params: dict[str, Any] = {}
    countries = sql.SQL("p.primary_countries" if f.role == "primary" else "p.countries")
    op = sql.SQL("@>" if f.match == "all" else "&&")
    if f.countries:
        conds.append(sql.SQL("{} {} {}::text[]").format(countries, op, sql.Placeholder("countries")))
        params["countries"] = list(f.countries)
    region_conds = _regions(f, countries, params)
    if region_conds:
        conds.append(sql.SQL(" AND ").join(region_conds) if f.match == "all"
                     else sql.SQL("({})").format(sql.SQL(" OR ").join(region_conds)))
    place_sets = list(f.place_parts) if f.match == "all" else [
        sorted({p for parts in f.place_parts for p in parts})] if f.place_parts else []
    for i, parts in enumerate(place_sets):  # a place matches when it or a place within it is named
        conds.append(sql.SQL("p.places && {}::text[]").format(sql.Placeholder(f"place{i}")))
        params[f"place{i}"] = list(parts)
    if f.topics:
        conds.append(sql.SQL("p.topics {} %(topics)s::text[]").format(op))
        params["topics"] = list(f.topics)
    if f.sources:
        conds.append(sql.SQL("p.id IN (SELECT ps.post_id FROM post_sources ps "
                             "WHERE ps.source_id = ANY(%(sources)s::bigint[]))"))
        params["sources"] = list(f.sources)
    if f.langs:
        conds.append(sql.SQL("p.lang = ANY(%(langs)s::text[])"))
        params["langs"] = list(f.langs)
    if f.q:
        conds.append(sql.SQL("p.search @@ {}").format(_TSQUERY))
        params["q"] = f.q
    if f.since:
        conds.append(sql.SQL("p.sort_at >= %(since)s"))
        params["since"] = f.since
    if f.until:
        conds.append(sql.SQL("p.sort_at < %(until)s"))
        params["until"] = f.until
    return (sql.SQL(" AND ").join(conds) if conds else sql.SQL("true")), params


def _regions(f: PostFilter, countries: sql.Composable, params: dict[str, Any]) -> list[sql.Composable]:
    """One condition per region (match=all), or one per kind (any): a region of whole countries matches
    any of its countries, a region that is part of a country matches its places."""
    by_places = f.region_places + ((),) * (len(f.region_countries) - len(f.region_places))
    country_sets = [c for c, places in zip(f.region_countries, by_places, strict=True) if not places]
    place_sets = [places for places in by_places if places]
    if f.match != "all":
        country_sets = [sorted({c for members in country_sets for c in members})] if country_sets else []
        place_sets = [sorted({p for members in place_sets for p in members})] if place_sets else []
    conds: list[sql.Composable] = []
    for i, members in enumerate(country_sets):
        conds.append(sql.SQL("{} && {}::text[]").format(countries, sql.Placeholder(f"region{i}")))
        params[f"region{i}"] = list(members)
    for i, members in enumerate(place_sets):
        conds.append(sql.SQL("p.places && {}::text[]").format(sql.Placeholder(f"region_places{i}")))
        params[f"region_places{i}"] = list(members)
    return conds


def _after(cursor: Cursor | None) -> tuple[sql.Composable, dict[str, Any]]:
    """Keyset condition: strictly after the previous page's last post in the sort order."""
    if cursor is None:
        return sql.SQL("true"), {}
    params: dict[str, Any] = {"c_published": cursor.published, "c_id": cursor.id}
    if cursor.sort == "relevance":
        params["c_rank"] = cursor.rank
        return sql.SQL("({}, p.sort_at, p.id) < (%(c_rank)s::real, %(c_published)s, %(c_id)s)").format(
            _RANK), params
    return sql.SQL("(p.sort_at, p.id) < (%(c_published)s, %(c_id)s)"), params


def list_sql(query: PostQuery) -> tuple[sql.Composed, dict[str, Any]]:
    """The posts of one page, in order, as (id, rank) rows (limit + 1 of them: the extra one says
    whether there is a next page). Only `posts` is read, so an index that holds the tag arrays
    answers a tag filter on its own (migration 0024), and planning it for the filter's values is
    cheap; what is shown of each post is read by `_PAGE`, a plan made once."""
    condition, params = where(query.filter)
    after, after_params = _after(query.cursor)
    relevance = query.sort == "relevance"
    order = "rank DESC, p.sort_at DESC, p.id DESC" if relevance else "p.sort_at DESC, p.id DESC"
    statement = sql.SQL("""
        SELECT p.id, {rank} AS rank FROM posts p
        WHERE {condition} AND {after}
        ORDER BY {order}
        LIMIT %(limit)s
    """).format(rank=_RANK if relevance else sql.SQL("NULL::real"), condition=condition, after=after,
                order=sql.SQL(order))
    return statement, {**params, **after_params, "limit": query.limit + 1}


# What a list shows of the posts `list_sql` chose, in its order. Its only parameters are those
# posts, so psycopg prepares it and PostgreSQL keeps one plan for it, where planning its four
# tables for every page cost 0.5 ms of the 1 ms a page of the newest posts takes in PostgreSQL.
# Every column is always there (NULL when not asked for), so the rows are PostRow's fields in order.
_PAGE = """
    SELECT p.id, p.title, p.url, p.author, p.published_at, p.sort_at, p.updated_at, p.summary, p.lang,
           p.places,
           {text} AS text, s.id AS source_id, coalesce(s.name, s.title, s.url) AS source_name,
           s.url AS source_url, chosen.rank, sk.story_id, st.source_count AS story_sources, {tags}
    FROM unnest(%(ids)s::bigint[], %(ranks)s::real[]) WITH ORDINALITY AS chosen (id, rank, n)
         JOIN posts p ON p.id = chosen.id
         LEFT JOIN sources s ON s.id = p.source_id
         LEFT JOIN post_story_keys sk ON sk.post_id = p.id LEFT JOIN stories st ON st.id = sk.story_id
         {tagged}
    ORDER BY chosen.n
"""
# The tags a list shows, in one look-up of each post's tag rows (as tags_of orders them).
_TAGS_SHOWN = sql.SQL("coalesce(tags.primary_tags, '{}') AS primary_tags, "
                      "coalesce(tags.topic_tags, '{}') AS topic_tags, coalesce(tags.place_tags, '{}') AS place_tags")
_NO_TAGS = sql.SQL("NULL::text[] AS primary_tags, NULL::text[] AS topic_tags, NULL::text[] AS place_tags")
_TAGGED = sql.SQL("""LEFT JOIN LATERAL (
        SELECT array_agg(t.code ORDER BY t.score DESC, t.code)
                   FILTER (WHERE t.kind = 'country' AND t.role = 'primary') AS primary_tags,
               array_agg(t.code ORDER BY t.score DESC, t.code) FILTER (WHERE t.kind = 'topic') AS topic_tags,
               array_agg(t.code ORDER BY t.score DESC, t.code) FILTER (WHERE t.kind = 'place') AS place_tags
        FROM post_tags t WHERE t.post_id = p.id) AS tags ON true""")
C = TypeVar("C", bound=psycopg.Cursor[Any])


@cache
def _page_sql(text: bool, tags: bool) -> sql.Composed:
    """_PAGE with the text or not, the tags shown or not."""
    return sql.SQL(_PAGE).format(text=sql.SQL("p.text" if text else "NULL::text"),
                                 tags=_TAGS_SHOWN if tags else _NO_TAGS, tagged=_TAGGED if tags else sql.SQL(""))


def filtered(cursor: C, statement: sql.Composable, params: dict[str, Any]) -> C:
    """Run a statement whose best plan depends on the filter's values: never prepared, so PostgreSQL
    plans it for these values every time. A plan kept for any values cannot tell a rare country
    from Russia (walking the date index for one, reading the GIN index for the other): measured, a
    kept plan made country + topic 35 times slower. Every other statement of a read is prepared
    by psycopg once it recurs, and its plan kept (Database.read)."""
    return cursor.execute(statement, params, prepare=False)


def _in_order(cls: type[Any]) -> BaseRowFactory[Any]:
    """Rows as instances of a dataclass whose fields the query's columns are, in order: built from
    positional values (a page's ~250 rows cost 0.2 ms as keyword arguments, class_row's way). The
    column names are checked against the fields once a query, so a reordered SELECT fails loudly."""
    names = tuple(f.name for f in fields(cls))
    positional = args_row(cls)

    def factory(cursor: Any) -> RowMaker[Any]:
        columns = tuple(c.name for c in cursor.description or ())
        if columns != names[:len(columns)]:
            raise TypeError(f"columns {columns} are not the fields of {cls.__name__} in order")
        return positional(cursor)

    return factory


def list_posts(conn: psycopg.Connection, query: PostQuery, *, tags: bool = False) -> list[PostRow]:
    """One page of posts (limit + 1, as `list_sql`). `tags`: each post's primary countries, topics
    and places, as a list shows them (the whole tag rows are `tags_of`)."""
    chosen = filtered(conn.cursor(), *list_sql(query)).fetchall()
    if not chosen:
        return []
    params = {"ids": [i for i, _ in chosen], "ranks": [r for _, r in chosen]}
    statement = _page_sql("text" in query.include, tags)
    return conn.cursor(row_factory=_in_order(PostRow)).execute(statement, params).fetchall()


def tags_of(conn: psycopg.Connection, post_ids: Sequence[int], *, evidence: bool) -> list[TagRow]:
    """Tags of these posts, countries first, strongest first."""
    cur = conn.cursor(row_factory=_in_order(TagRow))
    if evidence:
        return cur.execute(_TAGS_WITH_EVIDENCE, {"ids": list(post_ids)}).fetchall()
    return cur.execute(_TAGS, {"ids": list(post_ids)}).fetchall()


_TAGS = """
    SELECT post_id, kind, code, role, score, NULL::jsonb AS evidence
    FROM post_tags WHERE post_id = ANY(%(ids)s)
    ORDER BY post_id, kind, score DESC, code
"""
_TAGS_WITH_EVIDENCE = """
    SELECT post_id, kind, code, role, score, evidence
    FROM post_tags WHERE post_id = ANY(%(ids)s)
    ORDER BY post_id, kind, score DESC, code
"""


def get_post(conn: psycopg.Connection, post_id: int) -> PostDetailRow | None:
    cur = conn.cursor(row_factory=class_row(PostDetailRow))
    return cur.execute(
        """
        SELECT id, title, url, author, published_at, sort_at, updated_at, summary, lang, places, text, html,
               categories, first_seen_at, changed_at, taxonomy_version,
               (SELECT k.story_id FROM post_story_keys k WHERE k.post_id = posts.id) AS story_id
        FROM posts WHERE id = %(id)s
        """,
        {"id": post_id},
    ).fetchone()


def sources_of(conn: psycopg.Connection, post_id: int) -> list[LinkedSource]:
    cur = conn.cursor(row_factory=class_row(LinkedSource))
    return cur.execute(
        """
        SELECT s.id, coalesce(s.name, s.title, s.url) AS name, s.url, ps.first_seen_at
        FROM post_sources ps JOIN sources s ON s.id = ps.source_id
        WHERE ps.post_id = %(id)s ORDER BY ps.first_seen_at, s.id
        """,
        {"id": post_id},
    ).fetchall()


@dataclass(frozen=True, slots=True)
class TagCount:
    kind: str
    code: str
    posts: int
    primary_posts: int


def tag_counts(conn: psycopg.Connection) -> list[TagCount]:
    """Posts per country and topic code (all time), from the tag rows' (kind, code, role) index."""
    cur = conn.cursor(row_factory=class_row(TagCount))
    return cur.execute(
        """
        SELECT kind, code, count(*) AS posts, count(*) FILTER (WHERE role = 'primary') AS primary_posts
        FROM post_tags GROUP BY kind, code
        """
    ).fetchall()


def region_counts(conn: psycopg.Connection, regions: dict[str, Sequence[str]],
                  region_places: dict[str, Sequence[str]] | None = None) -> dict[str, int]:
    """Posts of each region: about any of its countries, or naming one of its places (a region that is
    part of a country); one GIN lookup per region."""
    if not regions:
        return {}
    places = region_places or {}
    rows = sql.SQL(", ").join(
        sql.SQL("({}, {}::text[], {}::text[])").format(
            sql.Placeholder(f"c{i}"), sql.Placeholder(f"m{i}"), sql.Placeholder(f"p{i}"))
        for i in range(len(regions)))
    params: dict[str, Any] = {}
    for i, (code, members) in enumerate(regions.items()):
        params[f"c{i}"], params[f"m{i}"], params[f"p{i}"] = code, list(members), list(places.get(code, ()))
    statement = sql.SQL("""
        SELECT r.code, CASE WHEN cardinality(r.places) > 0
                            THEN (SELECT count(*) FROM posts p WHERE p.places && r.places)
                            ELSE (SELECT count(*) FROM posts p WHERE p.countries && r.members) END
        FROM (VALUES {rows}) AS r (code, members, places)
    """).format(rows=rows)
    return {code: count for code, count in filtered(conn.cursor(), statement, params).fetchall()}
