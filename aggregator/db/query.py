"""SQL for reading posts: the filtered, keyset-paginated list, one post, facets, taxonomy counts.

Every reader (REST API, filtered feeds, digests) selects posts with one PostFilter, turned into a
WHERE clause here with psycopg.sql: user values only ever travel as named parameters.
Each condition is written so that an index can answer it: the GIN indexes on posts.countries /
primary_countries / topics / search, the (source_id, post_id) index of post_sources, and the
(published_at DESC, id DESC) index that makes keyset pages cheap at any depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from aggregator.query import Cursor, PostFilter, PostQuery

TS_CONFIG = "english"  # the text search configuration of posts.search (migration 0003)
_TSQUERY = sql.SQL("websearch_to_tsquery({}::regconfig, {})").format(sql.Literal(TS_CONFIG), sql.Placeholder("q"))
_RANK = sql.SQL("ts_rank(p.search, {}, 1)").format(_TSQUERY)  # 1: divided by 1 + log(length)


@dataclass(slots=True)
class PostRow:
    id: int
    title: str
    url: str | None
    author: str | None
    published_at: datetime
    updated_at: datetime | None
    summary: str
    lang: str | None
    text: str | None
    source_id: int | None
    source_name: str | None
    source_url: str | None
    rank: float | None


@dataclass(slots=True)
class PostDetailRow:
    id: int
    title: str
    url: str | None
    author: str | None
    published_at: datetime
    updated_at: datetime | None
    summary: str
    lang: str | None
    text: str
    html: str
    categories: list[str]
    first_seen_at: datetime
    changed_at: datetime
    taxonomy_version: str | None


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
    region_sets = list(f.region_countries) if f.match == "all" else [
        sorted({c for members in f.region_countries for c in members})] if f.region_countries else []
    for i, members in enumerate(region_sets):  # a region matches when any of its countries does
        conds.append(sql.SQL("{} && {}::text[]").format(countries, sql.Placeholder(f"region{i}")))
        params[f"region{i}"] = list(members)
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
        conds.append(sql.SQL("p.published_at >= %(since)s"))
        params["since"] = f.since
    if f.until:
        conds.append(sql.SQL("p.published_at < %(until)s"))
        params["until"] = f.until
    return (sql.SQL(" AND ").join(conds) if conds else sql.SQL("true")), params


def _after(cursor: Cursor | None) -> tuple[sql.Composable, dict[str, Any]]:
    """Keyset condition: strictly after the previous page's last post in the sort order."""
    if cursor is None:
        return sql.SQL("true"), {}
    params: dict[str, Any] = {"c_published": cursor.published, "c_id": cursor.id}
    if cursor.sort == "relevance":
        params["c_rank"] = cursor.rank
        return sql.SQL("({}, p.published_at, p.id) < (%(c_rank)s::real, %(c_published)s, %(c_id)s)").format(
            _RANK), params
    return sql.SQL("(p.published_at, p.id) < (%(c_published)s, %(c_id)s)"), params


def list_sql(query: PostQuery) -> tuple[sql.Composed, dict[str, Any]]:
    """One page of posts (limit + 1 rows: the extra one says whether there is a next page)."""
    condition, params = where(query.filter)
    after, after_params = _after(query.cursor)
    relevance = query.sort == "relevance"
    order = "rank DESC, p.published_at DESC, p.id DESC" if relevance else "p.published_at DESC, p.id DESC"
    statement = sql.SQL("""
        SELECT p.id, p.title, p.url, p.author, p.published_at, p.updated_at, p.summary, p.lang,
               {text} AS text, s.id AS source_id, coalesce(s.name, s.title, s.url) AS source_name,
               s.url AS source_url, {rank} AS rank
        FROM posts p LEFT JOIN sources s ON s.id = p.source_id
        WHERE {condition} AND {after}
        ORDER BY {order}
        LIMIT %(limit)s
    """).format(
        text=sql.SQL("p.text" if "text" in query.include else "NULL::text"),
        rank=_RANK if relevance else sql.SQL("NULL::real"),
        condition=condition, after=after, order=sql.SQL(order),
    )
    return statement, {**params, **after_params, "limit": query.limit + 1}


def list_posts(conn: psycopg.Connection, query: PostQuery) -> list[PostRow]:
    statement, params = list_sql(query)
    return conn.cursor(row_factory=class_row(PostRow)).execute(statement, params).fetchall()


def tags_of(conn: psycopg.Connection, post_ids: Sequence[int], *, evidence: bool) -> list[TagRow]:
    """Tags of these posts, countries first, strongest first."""
    statement = sql.SQL("""
        SELECT post_id, kind, code, role, score, {evidence} AS evidence
        FROM post_tags WHERE post_id = ANY(%(ids)s)
        ORDER BY post_id, kind, score DESC, code
    """).format(evidence=sql.SQL("evidence" if evidence else "NULL::jsonb"))
    cur = conn.cursor(row_factory=class_row(TagRow))
    return cur.execute(statement, {"ids": list(post_ids)}).fetchall()


def get_post(conn: psycopg.Connection, post_id: int) -> PostDetailRow | None:
    cur = conn.cursor(row_factory=class_row(PostDetailRow))
    return cur.execute(
        """
        SELECT id, title, url, author, published_at, updated_at, summary, lang, text, html, categories,
               first_seen_at, changed_at, taxonomy_version
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


def region_counts(conn: psycopg.Connection, regions: dict[str, Sequence[str]]) -> dict[str, int]:
    """Posts about any country of each region; one GIN lookup per region."""
    if not regions:
        return {}
    rows = sql.SQL(", ").join(
        sql.SQL("({}, {}::text[])").format(sql.Placeholder(f"c{i}"), sql.Placeholder(f"m{i}"))
        for i in range(len(regions)))
    params: dict[str, Any] = {}
    for i, (code, members) in enumerate(regions.items()):
        params[f"c{i}"], params[f"m{i}"] = code, list(members)
    statement = sql.SQL("""
        SELECT r.code, (SELECT count(*) FROM posts p WHERE p.countries && r.members)
        FROM (VALUES {rows}) AS r (code, members)
    """).format(rows=rows)
    return {code: count for code, count in conn.execute(statement, params).fetchall()}


def begin_read(conn: psycopg.Connection, *, statement_timeout: float) -> None:
    """Start an API transaction, in one round trip: REPEATABLE READ, READ ONLY (every statement
    sees the same data: a page and its tags, the facet rollup and its dirty months), a statement
    timeout (a pathological query fails fast instead of holding a connection), enough work_mem
    that bitmaps over tens of thousands of posts stay exact instead of lossy, and a plan made for
    each query's own values: psycopg prepares repeated statements, and a generic plan cannot tell
    a rare country from Russia (walking the date index for one, reading the GIN index for the
    other) -- measured, a generic plan made country + topic 35 times slower."""
    conn.execute(sql.SQL(
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET LOCAL statement_timeout = {}; "
        "SET LOCAL work_mem = '16MB'; SET LOCAL plan_cache_mode = force_custom_plan"
    ).format(sql.Literal(str(max(1, int(statement_timeout * 1000))))))
