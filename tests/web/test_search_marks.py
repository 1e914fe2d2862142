"""A search's marks in a listed title and summary are PostgreSQL's own: the page asks it only about
the pieces of text that could match, and the result must be what ts_headline makes of the whole
text. Checked on written cases of each kind of token the parser knows, and on the labeled real
articles with searches drawn from their own words."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from markupsafe import escape

from aggregator.db.headlines import marked_pieces
from aggregator.web.highlight import START, STOP, WORD, mark_pieces, pieces, word_starts

CONFIG = {"en": "english", None: "english", "ru": "russian"}


@pytest.fixture(scope="module")
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


def ours(conn: psycopg.Connection, text: str, lang: str | None, q: str) -> str:
    spans = pieces(word_starts(q), text)
    marked = marked_pieces(conn, q, {(text[begin:end], lang) for begin, end in spans})
    return str(escape(mark_pieces(text, lang, spans, marked)))


def headline(conn: psycopg.Connection, text: str, lang: str | None, q: str) -> str:
    """The whole text marked by ts_headline, as the page showed it before."""
    row = conn.execute("SELECT ts_headline(%s::regconfig, %s, search_query(%s), %s)",
                       [CONFIG.get(lang, "simple"), text, q, f"StartSel={START}, StopSel={STOP}, HighlightAll=true"]
                       ).fetchone()
    assert row is not None
    return str(escape(row[0])).replace(START, "<mark>").replace(STOP, "</mark>")


CASES = [  # (post language, text, search)
    ("en", "Border guards crossed the border-guard post at the Border.", "border"),
    ("en", "The dying man saw the skies over Tashkent; cries and crying.", "die sky cry"),  # stems change letters
    ("en", "See eadaily.com, RFE/RL at 10:00, 1.5 and -11, on 02.03.2021, the G7 and foo_bar.",
     "eadaily rfe 1.5 11 g7 bar 10"),  # hosts, paths, numbers, versions, underscores: parsed whole or cut
    ("en", "The Fergana valley and other valleys", '"Fergana valley"'),
    ("en", "The state of the art and the rest", "the art"),  # 'the': in the query ('simple'), an English stop word
    ("en", "<script>alert(1)</script> border & guard 'quoted'", "border script quoted"),
    ("en", "Troops at the border, and more troops", "troops -border"),
    ("en", "Kazakhstan's border; Kazakhstan’s army", "kazakhstan"),
    ("ru", "Ёлка у границы, ёлки и елки на границе", "ёлка граница"),
    ("ru", "Казахстан и Россия: казахстанские военные в Казахстане", "Казахстане"),
    (None, "Border talks", "border"),
    ("kk", "Қазақстан шекарасы мен шекара", "шекарасы"),
    ("en", "Nothing here matches", "border"),
    ("en", "", "border"),
    ("en", "A border", "- ! ' \""),  # a search of no words
]


@pytest.mark.parametrize(("lang", "text", "q"), CASES)
def test_marks_are_postgresql_s_own(conn: psycopg.Connection, lang: str | None, text: str, q: str) -> None:
    assert ours(conn, text, lang, q) == headline(conn, text, lang, q)


def test_the_written_cases_mark_something_and_not_everything(conn: psycopg.Connection) -> None:
    """The comparison above is not between two texts left bare."""
    marked = [headline(conn, text, lang, q) for lang, text, q in CASES]
    assert sum("<mark>" in m for m in marked) >= 10
    assert "the <mark>art</mark>" in marked[4] and "<mark>The</mark>" not in marked[4]
    assert marked[8].count("<mark>") == 5  # ёлка, ёлки, елки and both forms of граница


def test_only_pieces_that_could_match_are_asked_about() -> None:
    text = "Border guards, the border-guard post; Борта и берег"
    found = [text[begin:end] for begin, end in pieces(word_starts("border"), text)]
    assert found == ["Border", "border-guard"]  # not "Борта": a Cyrillic letter is not the Latin one
    assert [text[b:e] for b, e in pieces(word_starts("guard"), text)] == ["guards,", "border-guard"]
    assert pieces(word_starts("ёж"), "еж ёж Ежи x") == [(0, 2), (3, 5), (6, 9)]
    assert pieces(word_starts("!!"), text) == [] and word_starts("") is None


def test_marks_escape_the_text() -> None:
    text = "<b>border</b> & more"
    marked = mark_pieces(text, "en", [(0, 13)], {("<b>border</b>", "en"): f"<b>{START}border{STOP}</b>"})
    assert str(marked) == "&lt;b&gt;<mark>border</mark>&lt;/b&gt; &amp; more"
    assert mark_pieces(text, "ru", [(0, 13)], {("<b>border</b>", "en"): "x"}) == text  # another language's


def _articles(path: Path, lang: str) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8") as lines:
        return [(f"{a['title']}\n{a['text'][:2000]}", lang) for a in map(json.loads, lines)]


def test_marks_match_postgresql_s_on_real_articles(conn: psycopg.Connection, shared_data: Path) -> None:
    """Every labeled article, with four searches of one, two and three of its own words."""
    articles = (_articles(shared_data / "tagging" / "dev-en.jsonl", "en")
                + _articles(shared_data / "tagging" / "dev-ru.jsonl", "ru"))
    rnd = random.Random(13)
    differ, marked = [], 0
    for text, lang in articles:
        words = WORD.findall(text)
        for n in (1, 2, 3, 2):
            q = " ".join(rnd.sample(words, n))
            expected = headline(conn, text, lang, q)
            marked += "<mark>" in expected
            if ours(conn, text, lang, q) != expected:
                differ.append(q)
    assert len(articles) >= 150 and marked >= 3 * len(articles)
    assert not differ, differ
