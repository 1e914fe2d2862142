"""Fixtures of the API tests: posts ingested through the real pipeline, and the app around them.

The fixture feeds (tests/data/api/) are served by a real local HTTP server and polled by the real
Worker -> Pipeline (fetch, parse, normalize, tag, store), so the API is tested on what ingestion
really stores. `Corpus.posts` reads the stored rows back as the oracle the filters are checked against.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from aggregator.config import Settings
from aggregator.db import Database
from aggregator.db import sources as sources_db
from aggregator.db.sources import SourceSpec
from aggregator.ingest.fetch import Fetcher
from aggregator.ingest.pipeline import Pipeline
from aggregator.ingest.worker import Worker
from aggregator.runtime import build_web_app
from tests.support.database import reset
from tests.support.feedserver import FeedServer

with warnings.catch_warnings():  # starlette asks for httpx2 on import; httpx is what the project uses
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

DATA = Path(__file__).resolve().parent.parent / "data" / "api"
FEEDS = {  # served path -> fixture file
    "/steppe-watch.atom": "steppe_watch.atom",
    "/caucasus-monitor.rss": "caucasus_monitor.rss",
    "/kabul-wire.rss": "kabul_wire.rss",
    "/vesti-regiona.rss": "vesti_regiona.rss",
}
ADMIN_KEY = "test-admin-key-1234"


@dataclass(frozen=True)
class StoredPost:
    id: int
    title: str
    published: datetime
    lang: str | None
    countries: frozenset[str]
    primary: frozenset[str]
    topics: frozenset[str]
    sources: frozenset[int]
    places: frozenset[str] = frozenset()


@dataclass
class Site:
    """An app over its own database and feed server, for modules that build one of their own."""

    db: Database
    client: TestClient
    server: FeedServer
    settings: Settings


@dataclass
class Corpus:
    db: Database
    client: TestClient
    server: FeedServer
    settings: Settings
    sources: dict[str, int]  # served path -> source id

    def posts(self) -> list[StoredPost]:
        """Every stored post, newest first (the API's order), read straight from the tables."""
        with self.db.connection() as conn:
            rows = conn.execute(
                """
                SELECT p.id, p.title, p.sort_at, p.lang, p.countries, p.primary_countries, p.topics,
                       array_agg(ps.source_id), p.places
                FROM posts p JOIN post_sources ps ON ps.post_id = p.id
                GROUP BY p.id ORDER BY p.sort_at DESC, p.id DESC
                """
            ).fetchall()
        return [StoredPost(r[0], r[1], r[2], r[3], frozenset(r[4]), frozenset(r[5]), frozenset(r[6]),
                           frozenset(r[7]), frozenset(r[8])) for r in rows]

    def by_title(self, fragment: str) -> StoredPost:
        [post] = [p for p in self.posts() if fragment in p.title]
        return post


def api_settings(database_url: str, tmp: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url, "data_dir": tmp / "var", "feeds_file": tmp / "feeds.yaml",
        "allow_private_networks": True, "fetch_deadline": 5.0, "connect_timeout": 2.0, "parse_processes": 1,
        "fetch_concurrency": 4, "api_counts_cache_seconds": 0.0, "admin_api_key": ADMIN_KEY,
        "cors_origins": "https://analyst.example", "api_max_limit": 100,
        # The per-client subscribe limit would turn most of the fuzzer's requests into 429s;
        # tests/security/test_subscribe_abuse.py tests it.
        "subscribe_client_per_minute": 0, "subscribe_client_per_hour": 0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def truncate(db: Database) -> None:
    with db.connection() as conn:
        reset(conn, "api")


def serve_fixtures(server: FeedServer) -> None:
    for path, name in FEEDS.items():
        server.serve(path, (DATA / name).read_bytes(), headers={"Content-Type": "application/xml"})


def add_sources(db: Database, server: FeedServer, paths: list[str]) -> dict[str, int]:
    ids = {}
    with db.connection() as conn:
        for path in paths:
            source, _ = sources_db.add(conn, SourceSpec(server.url(path)), origin="cli", poll_interval=3600)
            ids[path] = source.id
    return ids


def poll(db: Database, settings: Settings, urls: list[str]) -> None:
    """Poll these feeds now with the real worker and pipeline; every poll must succeed."""
    with Fetcher(settings) as fetcher:
        worker = Worker(db, Pipeline(db, fetcher, settings), settings)
        try:
            outcomes = worker.poll_now(urls)
        finally:
            worker.shutdown()
    assert [o.outcome for o in outcomes] == ["ok"] * len(urls), [o.describe() for o in outcomes]


@pytest.fixture(scope="module")
def corpus(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    """The four fixture feeds ingested once for a module of read-only tests."""
    settings = api_settings(database_url, tmp_path_factory.mktemp("api"))
    with Database(database_url, max_size=6) as db, FeedServer() as server:
        truncate(db)
        app = build_web_app(settings, db)  # first: loads the taxonomy once, before the worker's threads want it
        serve_fixtures(server)
        sources = add_sources(db, server, list(FEEDS))
        poll(db, settings, [server.url(p) for p in FEEDS])
        with TestClient(app) as client:
            yield Corpus(db, client, server, settings, sources)
        truncate(db)


def ids(response_json: dict[str, object]) -> list[int]:
    return [item["id"] for item in response_json["items"]]  # type: ignore[index, union-attr]


def expected_facets(posts: list[StoredPost]) -> dict[str, dict[str, int]]:
    result: dict[str, dict[str, int]] = {"country": {}, "topic": {}, "source": {}, "day": {}, "lang": {}}
    for p in posts:
        keys = [("country", c) for c in p.countries] + [("topic", t) for t in p.topics]
        keys += [("source", str(s)) for s in p.sources] + [("day", p.published.date().isoformat())]
        keys += [("lang", p.lang or "und")]
        for kind, key in keys:
            result[kind][key] = result[kind].get(key, 0) + 1
    return result


def facets_of(corpus: Corpus, params: dict[str, object]) -> dict[str, dict[str, int]]:
    response = corpus.client.get("/api/v1/facets", params=params)
    assert response.status_code == 200, response.text
    return {kind: {v["key"]: v["count"] for v in values} for kind, values in response.json().items()}
