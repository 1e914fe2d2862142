"""SQL for search highlights: a found post's title and summary with the query's matches marked.

PostgreSQL's ts_headline finds the matches the search itself found (same configuration, same
stemming), which a highlighter in Python could only imitate. It does not escape what it returns,
so matches are wrapped in control-character sentinels (aggregator.web.highlight escapes the text,
then turns the sentinels into <mark>).

The marked title and summary are two more columns of the statement that reads what a page shows
of its posts (post_filters.list_posts asks for them), not a statement of their own: a second
statement cost a round trip, a plan and the query's parsing again, about a tenth of a search page's
time in PostgreSQL. ts_headline is computed only for the page's own posts, which that statement reads.
"""

from __future__ import annotations

from psycopg import sql

_OPTIONS = "StartSel=\x02, StopSel=\x03, HighlightAll=true"
# The configuration a post is indexed with (migration 0012), so its matches are found as the search found them.
_CONFIG = sql.SQL("""CASE WHEN p.lang = 'ru' THEN 'russian'::regconfig WHEN p.lang = 'en' OR p.lang IS NULL
                     THEN 'english'::regconfig ELSE 'simple'::regconfig END""")
# `query`: the search as the statement parsed it once (post_filters' `searched.words`); the options travel as a
# parameter.
_MARKED = sql.SQL("""ts_headline({config}, p.title, {query}, %(headline_options)s) AS title_marked,
               ts_headline({config}, p.summary, {query}, %(headline_options)s) AS summary_marked""")


def marked_columns(query: sql.Composable) -> tuple[sql.Composed, dict[str, str]]:
    """The title and summary with the matches of `query` (a tsquery expression) between sentinels,
    as two columns of a statement on `posts p`, and their parameter."""
    return _MARKED.format(config=_CONFIG, query=query), {"headline_options": _OPTIONS}
