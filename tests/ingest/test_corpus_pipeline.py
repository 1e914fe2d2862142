"""Every file of feedparser's own test corpus, served over HTTP and polled through the whole
pipeline (fetch -> parse -> normalize -> tag -> store): each ends with its posts stored or a clear
error recorded on its source, and nothing is left locked."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.config import Settings
from aggregator.db import Database
from aggregator.db import sources as sources_db
from aggregator.db.sources import SourceSpec
from aggregator.ingest.fetch import Fetcher
from aggregator.ingest.pipeline import Pipeline
from aggregator.ingest.worker import Worker
from tests.support.feedserver import FeedServer
from tests.support.shared import SHARED_DATA

CORPUS = SHARED_DATA / "feedparser-corpus"


def test_whole_corpus_goes_through_the_pipeline(
    shared_data: Path, db: Database, settings: Settings, feed_server: FeedServer
) -> None:
    files = sorted(p for p in (shared_data / "feedparser-corpus").rglob("*") if p.is_file()
                   and p.name not in {"LICENSE", "SOURCES.md"})
    if len(files) < 2000:
        pytest.skip(f"the corpus looks incomplete ({len(files)} files)")
    urls = []
    for n, path in enumerate(files):
        feed_server.serve(f"/c/{n}", path.read_bytes(), headers={"Content-Type": "application/xml"})
        urls.append(feed_server.url(f"/c/{n}"))
    with db.connection() as conn:
        for url in urls:
            sources_db.add(conn, SourceSpec(url), origin="cli", poll_interval=3600)

    settings = settings.model_copy(update={"fetch_concurrency": 8, "per_host_concurrency": 8})
    with Fetcher(settings) as fetcher:
        worker = Worker(db, Pipeline(db, fetcher, settings), settings)
        outcomes = worker.poll_now(urls)
        worker.shutdown()

    assert len(outcomes) == len(files)
    by_outcome: dict[str, int] = {}
    for o in outcomes:
        by_outcome[o.error_kind or o.outcome] = by_outcome.get(o.error_kind or o.outcome, 0) + 1
    assert set(by_outcome) <= {"ok", "malformed", "not_a_feed"}, by_outcome  # never "internal"/"storage"
    with db.connection() as conn:
        states = conn.execute(
            """
            SELECT s.url, s.last_success_at IS NOT NULL, s.last_error_kind, s.lease_owner,
                   (SELECT count(*) FROM post_sources ps WHERE ps.source_id = s.id)
            FROM sources s
            """
        ).fetchall()
        unsafe = conn.execute(
            r"""SELECT count(*) FROM posts WHERE html ~* '<script|\son[a-z]+\s*=|javascript:'"""
        ).fetchone()
    assert len(states) == len(files)
    for url, succeeded, error_kind, lease_owner, _posts in states:
        assert lease_owner is None, url
        assert succeeded or error_kind, f"{url}: neither stored nor an error recorded"
    assert sum(s[4] for s in states) > 500  # the corpus holds several hundred entries
    assert unsafe == (0,)
