"""The newest posts' search vectors, tags, language and sources (migrations 0023, 0025, 0026), where a
search's facet sample is taken first.

Triggers keep recent_search equal to the posts dated at or after its floor; here the floor is raised
so that the table stays about WINDOW posts as new ones arrive (the web server's facet refresher does
it every 30 s, the polling process's scheduler every 5 minutes, so that polling alone keeps it small).
It only rises: lowering it would have to add older posts while writers may be adding them too, and the
table needs no more than the newest WINDOW posts to be useful (posts deleted meanwhile only make it
smaller until the next rise).
"""

from __future__ import annotations

import psycopg
from psycopg import sql

WINDOW = 20_000  # newest posts a search's sample is taken from first (migration 0023 starts with as many)

_WINDOW_START = sql.SQL("(SELECT sort_at FROM posts ORDER BY sort_at DESC, id DESC OFFSET %(last)s LIMIT 1)")
_RAISE_FLOOR = sql.SQL("""
    WITH newest AS (SELECT {start} AS start)
    UPDATE recent_search_floor f SET floor = newest.start FROM newest WHERE newest.start > f.floor
    RETURNING f.floor
""").format(start=_WINDOW_START)
_SET_FLOOR = sql.SQL("UPDATE recent_search_floor SET floor = coalesce({start}, '-infinity')").format(
    start=_WINDOW_START)


def prune(conn: psycopg.Connection) -> int:
    """Raise the floor to the date of the newest WINDOW posts' last and drop what is now below it;
    how many rows went."""
    with conn.transaction():
        raised = conn.execute(_RAISE_FLOOR, {"last": WINDOW - 1}).fetchone()
        if raised is None:
            return 0
        return conn.execute("DELETE FROM recent_search WHERE sort_at < %(floor)s", {"floor": raised[0]}).rowcount


def rebuild(conn: psycopg.Connection) -> None:
    """The newest WINDOW posts, after a bulk load made with the floor shut ('infinity'). It may lower
    the floor, so it is for when nothing else writes posts."""
    with conn.transaction():
        conn.execute(_SET_FLOOR, {"last": WINDOW - 1})
        conn.execute("DELETE FROM recent_search")
        conn.execute("""INSERT INTO recent_search (post_id, sort_at, search, lang, countries, primary_countries,
                                                   topics, places, sources)
                        SELECT id, sort_at, search, lang, countries, primary_countries, topics, places,
                               post_sources_of(id)
                        FROM posts WHERE sort_at >= (SELECT floor FROM recent_search_floor)""")
