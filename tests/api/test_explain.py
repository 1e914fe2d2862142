"""The planner answers country, topic and full-text filters from indexes, never by scanning posts.

This is about the planner, not ingestion: a separate database is filled with generated rows in one
INSERT … SELECT (indexes built afterwards, as a bulk load would), analyzed, and the API's own SQL
(aggregator.db.post_filters) is EXPLAINed for each filter.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

import psycopg
import pytest
from psycopg import sql

from aggregator.db import Database
from aggregator.db import facets as facets_db
from aggregator.db import feed_posts as feed_posts_db
from aggregator.db import migrate as migrate_db
from aggregator.db import post_filters as filters_db
from aggregator.db import stories as stories_db
from aggregator.db import trends as trends_db
from aggregator.query import PostFilter, PostQuery, StoryQuery

ROWS = 120_000
# Every 1,000th post is about Turkmenistan and cyber; every 2,000th mentions zirconium. The common
# values (RU, KZ, military) are in a third of the posts or more.
SEED = """
INSERT INTO sources (url, poll_interval)
SELECT 'https://source' || g || '.example/feed', 3600 FROM generate_series(1, 40) AS g;

INSERT INTO posts (dedup_key, url, title, published_at, html, text, summary, lang, content_hash, source_id,
                   countries, primary_countries, topics)
SELECT 'post-' || g, 'https://news.example/' || g,
       (ARRAY['Border guards', 'Ministry of defence', 'Court jails', 'Protest in', 'Talks with'])[g % 5 + 1]
           || ' report ' || g,
       timestamptz '2015-01-01' + g * interval '37 minutes', '<p>body</p>',
       'The security services said on ' || (g % 28 + 1) || ' that troops, police and officials met. '
           || CASE WHEN g % 2000 = 0 THEN 'A shipment of zirconium was seized. ' ELSE '' END
           || (ARRAY['Drills continued.', 'Talks resumed.', 'Arrests followed.'])[g % 3 + 1],
       'summary', 'en', md5(g::text), g % 40 + 1,
       CASE WHEN g % 1000 = 0 THEN ARRAY['TM'] ELSE ARRAY['RU', (ARRAY['KZ', 'UZ', 'KG'])[g % 3 + 1]] END,
       CASE WHEN g % 1000 = 0 THEN ARRAY['TM'] ELSE ARRAY['RU'] END,
       CASE WHEN g % 1000 = 0 THEN ARRAY['cyber'] ELSE ARRAY[(ARRAY['military', 'diplomacy'])[g % 2 + 1]] END
FROM generate_series(1, %(rows)s) AS g;

INSERT INTO post_sources (post_id, source_id, guid) SELECT id, source_id, dedup_key FROM posts;
"""


@pytest.fixture(scope="module")
def big(database_url: str) -> Iterator[psycopg.Connection]:
    name = f"aggregator_explain_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(psycopg.conninfo.make_conninfo(database_url, dbname=name), autocommit=True) as conn:
            migrate_db.migrate(conn)
            indexes = conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'posts' "
                                   "AND indexname <> 'posts_pkey' AND indexname NOT LIKE '%%dedup%%'").fetchall()
            for index_name, _ in indexes:
                conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(index_name)))
            conn.execute(SEED.encode().replace(b"%(rows)s", str(ROWS).encode()))
            conn.execute("SET maintenance_work_mem = '256MB'")
            for _, definition in indexes:
                conn.execute(definition.encode())
            conn.execute("VACUUM ANALYZE posts")
            conn.execute("ANALYZE post_sources")
            yield conn
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from plan_nodes(child)


def explain(conn: psycopg.Connection, statement: sql.Composable, params: dict[str, Any]) -> list[dict[str, Any]]:
    rendered = sql.SQL("EXPLAIN (FORMAT JSON) {}").format(statement)
    [(document,)] = conn.execute(rendered, params).fetchall()
    data = document if isinstance(document, list) else json.loads(document)
    return list(plan_nodes(data[0]["Plan"]))


def scans_of_posts(nodes: list[dict[str, Any]]) -> set[str]:
    return {n["Node Type"] for n in nodes if n.get("Relation Name") == "posts"}


def index_names(nodes: list[dict[str, Any]]) -> set[str]:
    return {n["Index Name"] for n in nodes if "Index Name" in n}


@pytest.mark.parametrize(("post_filter", "index"), [
    (PostFilter(countries=("TM",)), "posts_countries_idx"),
    (PostFilter(countries=("TM",), role="primary"), "posts_primary_countries_idx"),
    (PostFilter(region_countries=(("TJ", "TM"),), regions=("x",)), "posts_countries_idx"),
    (PostFilter(topics=("cyber",)), "posts_topics_idx"),
    (PostFilter(q="zirconium"), "posts_search_idx"),
    (PostFilter(q="zirconium", countries=("RU",)), "posts_search_idx"),
    (PostFilter(countries=("TM",), topics=("cyber",), match="all"), "posts_topics_idx"),
])
def test_selective_filters_use_their_index(big: psycopg.Connection, post_filter: PostFilter, index: str) -> None:
    for sort in ("published", "relevance") if post_filter.q else ("published",):
        nodes = explain(big, *filters_db.list_sql(PostQuery(post_filter, sort=sort, limit=50)))
        assert "Seq Scan" not in scans_of_posts(nodes), nodes
        assert index in index_names(nodes), (index, index_names(nodes))
    facet_nodes = explain(big, *facets_db.live_sql(post_filter))
    assert index in index_names(facet_nodes) and "Seq Scan" not in scans_of_posts(facet_nodes)


@pytest.mark.parametrize("post_filter", [
    PostFilter(), PostFilter(countries=("RU",)), PostFilter(topics=("military",)), PostFilter(q="troops"),
    PostFilter(countries=("KZ",), topics=("diplomacy",)),
])
def test_common_filters_never_scan_the_table_for_a_page(big: psycopg.Connection, post_filter: PostFilter) -> None:
    """A value in half the posts is best found by walking the date index until the page is full."""
    nodes = explain(big, *filters_db.list_sql(PostQuery(post_filter, limit=50)))
    assert "Seq Scan" not in scans_of_posts(nodes), nodes
    assert index_names(nodes), nodes


def test_the_seeded_table_is_big_enough_to_matter(big: psycopg.Connection) -> None:
    """Without the indexes the same query does scan: the assertions above are not vacuous."""
    with big.transaction():
        big.execute("SET LOCAL enable_bitmapscan = off")
        big.execute("SET LOCAL enable_indexscan = off")
        nodes = explain(big, *filters_db.list_sql(PostQuery(PostFilter(countries=("TM",)), limit=50)))
    assert "Seq Scan" in scans_of_posts(nodes)



def test_a_filter_is_planned_for_its_values_and_a_page_once(big: psycopg.Connection) -> None:
    """Statements built from a filter are never prepared (a plan kept for any values walks the date
    index for a rare country); what a page shows of its chosen posts is, and its plan is kept."""
    rare = PostFilter(countries=("TM",), topics=("cyber",), match="all")
    words = PostFilter(q="zirconium", countries=("TM",))
    with Database(big.info.dsn, max_size=1) as database, database.read(statement_timeout=30) as conn:
        # the seeded months were never rolled up: trends count them from the posts
        assert conn.execute("SELECT count(*) FROM facet_dirty_months WHERE month = '2015-02-01'").fetchone() != (0,)
        for _ in range(8):  # psycopg prepares a statement on its sixth run
            for post_filter in (rare, words):
                rows = filters_db.list_posts(conn, PostQuery(post_filter, limit=20))
                assert rows, post_filter
                filters_db.tags_of(conn, [r.id for r in rows], evidence=False)
                facets_db.counts(conn, post_filter, days=0)
                facets_db.sampled(conn, post_filter, newest=100)
                feed_posts_db.heads(conn, post_filter, 10)
                stories_db.list_stories(conn, StoryQuery(post_filter))
            trends_db.daily(conn, "country", "TM", date(2015, 1, 1), date(2015, 3, 1))
            filters_db.region_counts(conn, {"central-asia": ["KZ", "TM"]})
        prepared = [r[0] for r in conn.execute("SELECT statement FROM pg_prepared_statements")]
    filter_operators = ("&&", "@>", "@@", "<@")
    assert not [s for s in prepared if any(op in s for op in filter_operators)], prepared
    assert any("WITH ORDINALITY AS chosen" in s for s in prepared), prepared
