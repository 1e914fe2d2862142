"""Fixtures of the feed tests: the API's fixture feeds ingested through the real pipeline, the app
around them (with its change listener running), and the stored rows as the oracle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from aggregator.config import Settings
from aggregator.db import Database
from aggregator.runtime import build_web_app
from tests.api.conftest import FEEDS, Site, TestClient, add_sources, api_settings, poll, serve_fixtures, truncate
from tests.support.database import reset
from tests.support.feedserver import FeedServer

DATA = Path(__file__).resolve().parent.parent / "data" / "feeds_out"
RNG = DATA / "rfc4287-atom.rng"


@dataclass(frozen=True)
class Row:
    id: int
    dedup_key: str
    title: str
    url: str | None
    author: str | None
    published: datetime
    updated: datetime | None
    countries: tuple[str, ...]
    primary: tuple[str, ...]
    topics: tuple[str, ...]
    lang: str | None


def stored(db: Database, keep: Callable[[Row], bool] = lambda r: True) -> list[Row]:
    """Stored posts in feed order (newest published first), filtered in Python: the oracle."""
    with db.connection() as conn:
        rows = conn.execute(
            """
            SELECT id, dedup_key, title, url, author, sort_at, updated_at, countries, primary_countries,
                   topics, lang
            FROM posts ORDER BY sort_at DESC, id DESC
            """
        ).fetchall()
    found = [Row(r[0], r[1], r[2], r[3], r[4], r[5], r[6], tuple(r[7]), tuple(r[8]), tuple(r[9]), r[10])
             for r in rows]
    return [r for r in found if keep(r)]


def clear_saved_feeds(db: Database) -> None:
    with db.connection() as conn:
        reset(conn, "saved_feeds")


def _site(db: Database, settings: Settings, server: FeedServer) -> Iterator[Site]:
    truncate(db)
    clear_saved_feeds(db)
    app = build_web_app(settings, db)
    serve_fixtures(server)
    add_sources(db, server, list(FEEDS))
    poll(db, settings, [server.url(p) for p in FEEDS])
    with TestClient(app) as client:
        yield Site(db, client, server, settings)
    truncate(db)
    clear_saved_feeds(db)


@pytest.fixture(scope="module")
def site(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The four fixture feeds ingested once, for a module of tests that only read."""
    settings = api_settings(database_url, tmp_path_factory.mktemp("feeds"), feeds_max_entries=100)
    with Database(database_url, max_size=6) as db, FeedServer() as server:
        yield from _site(db, settings, server)


@pytest.fixture
def live_site(database_url: str, tmp_path: Path) -> Iterator[Site]:
    """Like `site`, for one test that changes posts."""
    settings = api_settings(database_url, tmp_path, feeds_max_entries=100)
    with Database(database_url, max_size=6) as db, FeedServer() as server:
        yield from _site(db, settings, server)
