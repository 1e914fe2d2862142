"""The hostile corpus, ingested once per test session into a database of its own.

Our own XSS payloads (tests/data/hostile), a nesting bomb built here, and, with ../shared,
feedparser's sanitizer vectors go through the real pipeline (local feed server, worker, fetch,
parse, normalize, tag, cluster, store). The API, feed, digest and reader checks then read the same
stored posts back: polling the ~400 feeds took 13 s, once per module that needed them.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from aggregator.db import Database
from aggregator.ingest.pipeline import PollOutcome
from aggregator.tagging import load_taxonomy
from aggregator.web.rollup import refresh_once
from tests.api.conftest import api_settings
from tests.support.database import fresh_database
from tests.support.feedserver import FeedServer
from tests.support.polling import serve_and_poll
from tests.support.shared import SHARED_DATA

HOSTILE = Path(__file__).resolve().parent.parent / "data" / "hostile"
VECTORS = SHARED_DATA / "feedparser-corpus" / "wellformed" / "sanitize"
OWN_FEEDS = {"/xss.rss": "xss_payloads.rss", "/xss.atom": "xss_payloads.atom"}
DEEP_PATH = "/deep-nesting.rss"


def deep_nesting_feed() -> bytes:
    """A body nested deeper than html5ever can parse in linear time, so textclean takes its other road
    (markup stripped, text escaped) — which must be as safe as the sanitizer."""
    body = "<div>" * 5200 + "Marker deep.<script>alert(1)</script><img src=x onerror=alert(2)>"
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Deep</title>'
        "<link>https://deep.example/</link><description>Nesting</description><item>"
        "<title>Payload deep nesting bomb</title><link>https://deep.example/1</link><guid>https://deep.example/1</guid>"
        f"<pubDate>Tue, 04 Mar 2025 09:00:00 GMT</pubDate><description>{html.escape(body)}</description>"
        "</item></channel></rss>"
    ).encode()


def vector_files() -> list[Path]:
    """feedparser's sanitize vectors with an entry (the feed_* ones only test feed-level fields)."""
    if not VECTORS.is_dir():
        return []
    return sorted(p for p in VECTORS.glob("*.xml") if not p.name.startswith("feed_"))


@dataclass(frozen=True)
class HostileCorpus:
    url: str  # the database holding it
    outcomes: dict[str, PollOutcome]  # served path -> the outcome of its poll
    vectors: list[Path]  # feedparser's vector files polled ([] without ../shared)

    @property
    def ok_vectors(self) -> int:
        return sum(self.outcomes[f"/vectors/{p.name}"].outcome == "ok" for p in self.vectors)


@pytest.fixture(scope="session")
def hostile_corpus(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileCorpus]:
    server = psycopg.conninfo.make_conninfo(database_url, dbname="postgres")
    with fresh_database(server, prefix="aggregator_hostile") as url:
        settings = api_settings(url, tmp_path_factory.mktemp("hostile"), fetch_concurrency=8)
        vectors = vector_files()
        bodies = {path: (HOSTILE / name).read_bytes() for path, name in OWN_FEEDS.items()}
        bodies[DEEP_PATH] = deep_nesting_feed()
        bodies.update({f"/vectors/{p.name}": p.read_bytes() for p in vectors})
        load_taxonomy(None)  # once, before the worker's threads all want it
        with Database(url, max_size=12) as db, FeedServer() as feeds:
            outcomes = serve_and_poll(db, settings, feeds, bodies)
            refresh_once(db)
        yield HostileCorpus(url, outcomes, vectors)
