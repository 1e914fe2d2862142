"""SQL for search highlights: the title and summary of found posts with the query's matches marked.

PostgreSQL's ts_headline finds the matches the search itself found (same configuration, same
stemming), which a highlighter in Python could only imitate. It does not escape what it returns,
so matches are wrapped in control-character sentinels (aggregator.web.highlight escapes the text,
then turns the sentinels into <mark>).
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg import sql

_OPTIONS = "StartSel=\x02, StopSel=\x03, HighlightAll=true"
# The configuration a post is indexed with (migration 0012), so its matches are found as the search found them.
_HEADLINES = sql.SQL("""
    SELECT p.id, ts_headline({config}, p.title, query, %(options)s),
           ts_headline({config}, p.summary, query, %(options)s)
    FROM posts p, (SELECT search_query(%(q)s) AS query) AS parsed
    WHERE p.id = ANY(%(ids)s)
""").format(
    config=sql.SQL("""CASE WHEN p.lang = 'ru' THEN 'russian'::regconfig WHEN p.lang = 'en' OR p.lang IS NULL
                      THEN 'english'::regconfig ELSE 'simple'::regconfig END"""),
)


def search_headlines(conn: psycopg.Connection, post_ids: Sequence[int], q: str) -> dict[int, tuple[str, str]]:
    """post id -> (title, summary) with the matches of websearch query `q` between sentinels."""
    if not post_ids:
        return {}
    rows = conn.execute(_HEADLINES, {"q": q, "ids": list(post_ids), "options": _OPTIONS}).fetchall()
    return {post_id: (title, summary) for post_id, title, summary in rows}
