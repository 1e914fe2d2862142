"""Real Russian-language feeds (../shared/data/feeds-ru/) through the real pipeline: fetched from a local
HTTP server, parsed, normalized, language-detected, tagged and stored. Every stored string must be
readable Russian: windows-1251 decoded, a byte-order mark honoured, doubly-encoded UTF-8 repaired."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.config import Settings
from aggregator.db import Database
from aggregator.ingest.fetch import Fetcher
from aggregator.ingest.pipeline import Pipeline
from tests.support.feedserver import FeedServer
from tests.support.polling import claim_and_poll

# What doubly-encoded Cyrillic looks like: UTF-8 lead bytes read as cp1252 (Ð, Ñ) before another letter
MOJIBAKE = re.compile(r"[ÐÑ][\u0080-\u00ff\u0152-\u0192\u02c6-\u203a\u2122]")
CONTENT_TYPES = ["application/rss+xml", "text/xml", "application/xml; charset=utf-8"]
FILES = ["nodefeedparser_oren_windows1251.xml", "feedreader_yandex_moscow_mojibake.xml",
         "feedreader_citydog_bom.xml", "secondcoursework_lenta_2022.xml"]


@pytest.fixture
def pipeline(db: Database, settings: Settings) -> Iterator[Pipeline]:
    with Fetcher(settings) as fetcher:
        yield Pipeline(db, fetcher, settings)


def ingest(db: Database, pipeline: Pipeline, server: FeedServer, body: bytes, content_type: str) -> list[tuple]:
    server.serve("/ru", body, headers={"Content-Type": content_type})
    url = server.url("/ru")
    outcome = claim_and_poll(db, pipeline, url, add=True)
    assert outcome.outcome == "ok", outcome.describe()
    with db.connection() as conn:
        return conn.execute("SELECT title, text, summary, lang, countries FROM posts ORDER BY id").fetchall()


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
@pytest.mark.parametrize("name", FILES)
def test_russian_feed_is_stored_as_readable_russian(db: Database, pipeline: Pipeline, feed_server: FeedServer,
                                                   shared_data: Path, name: str, content_type: str) -> None:
    rows = ingest(db, pipeline, feed_server, (shared_data / "feeds-ru" / name).read_bytes(), content_type)
    assert len(rows) >= 10
    for title, text, summary, lang, _ in rows:
        for value in (title, text, summary):
            assert not MOJIBAKE.search(value), value[:80]
        assert re.search("[а-яё]{3}", title.lower()), title
        assert lang == "ru", title


def test_doubly_encoded_feed_is_repaired_and_tagged(db: Database, pipeline: Pipeline, feed_server: FeedServer,
                                                    shared_data: Path) -> None:
    body = (shared_data / "feeds-ru" / "feedreader_yandex_moscow_mojibake.xml").read_bytes()
    rows = ingest(db, pipeline, feed_server, body, "application/rss+xml")
    titles = [r[0] for r in rows]
    assert any("Москве" in t for t in titles), titles
    assert sum("RU" in r[4] for r in rows) >= 3, "repaired text is tagged: Москва is Russia"
    with db.connection() as conn:
        [(error,)] = conn.execute("SELECT error FROM fetch_log").fetchall() or [(None,)]
        [(source_title,)] = conn.execute("SELECT title FROM sources").fetchall()
    assert error is None
    assert source_title == "Яндекс.Новости: Москва"
