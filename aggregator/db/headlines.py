"""SQL for search highlights: a page's titles and summaries with the search's matches marked.

PostgreSQL marks them (ts_headline), so a word is marked exactly when its own search matches it:
the configuration of the post's search vector, its stemming and stop words. Run on each listed
title and summary, it parsed and stemmed every word of them, some 1,650 a page, 1.4 ms of
PostgreSQL's time for thirty posts; it is now run only on the distinct pieces of them (the text
between spaces) that could match (aggregator.web.highlight.pieces), a few dozen.
"""

from __future__ import annotations

from collections.abc import Iterable

import psycopg

# ts_headline wraps matches in these (stored text never holds them: clean_text drops control
# characters), so its output can be escaped first and marked after (aggregator.web.highlight).
START, STOP = "\x02", "\x03"
_OPTIONS = f"StartSel={START}, StopSel={STOP}, HighlightAll=true"
# The pieces and their posts' languages travel as two texts cut at a separator that stored text never
# holds (clean_text drops control characters): a text array's every item costs psycopg more than the
# whole statement costs PostgreSQL. The configuration is the post's search vector's (migration 0012);
# the search is parsed once (the sub-select, kept whole by OFFSET 0); only pieces with a match return.
SEPARATOR = "\x1f"
_MARKED = """
    SELECT piece, lang, marked
    FROM (SELECT w.piece, w.lang,
                 ts_headline(CASE WHEN w.lang = 'ru' THEN 'russian'::regconfig
                                  WHEN w.lang = 'en' OR w.lang IS NULL THEN 'english'::regconfig
                                  ELSE 'simple'::regconfig END,
                             w.piece, searched.query, %(options)s) AS marked
          FROM unnest(string_to_array(%(pieces)s, %(separator)s), string_to_array(%(langs)s, %(separator)s, ''))
                 AS w (piece, lang)
               CROSS JOIN (SELECT search_query(%(q)s) AS query OFFSET 0) AS searched) AS headlines
    WHERE strpos(marked, %(start)s) > 0
"""


def marked_pieces(conn: psycopg.Connection, q: str,
                  pieces: Iterable[tuple[str, str | None]]) -> dict[tuple[str, str | None], str]:
    """(piece, post language) -> the piece with the matches of the search `q` between START and
    STOP, for those of these pieces it matches (a piece holding the separator is not asked about)."""
    pairs = [(piece, lang) for piece, lang in pieces if SEPARATOR not in piece]
    if not pairs:
        return {}
    rows = conn.execute(_MARKED, {"pieces": SEPARATOR.join(piece for piece, _ in pairs),
                                  "langs": SEPARATOR.join(lang or "" for _, lang in pairs),
                                  "separator": SEPARATOR, "q": q, "options": _OPTIONS, "start": START}).fetchall()
    return {(piece, lang): marked for piece, lang, marked in rows}
