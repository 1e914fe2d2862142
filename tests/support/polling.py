"""Serving feed bodies on the test feed server and polling them with the real worker and
pipeline, as the service does: the shared first step of tests that need stored posts."""

from __future__ import annotations

from aggregator.config import Settings
from aggregator.db import Database
from aggregator.db import sources as sources_db
from aggregator.db.sources import SourceSpec
from aggregator.ingest.fetch import Fetcher
from aggregator.ingest.pipeline import Pipeline, PollOutcome
from aggregator.ingest.worker import Worker
from tests.support.feedserver import FeedServer


def serve_and_poll(db: Database, settings: Settings, server: FeedServer,
                   feeds: dict[str, bytes]) -> dict[str, PollOutcome]:
    """path -> the outcome of polling it once (its source_id names the stored source)."""
    with db.connection() as conn:
        for path, body in feeds.items():
            server.serve(path, body, headers={"Content-Type": "application/xml"})
            sources_db.add(conn, SourceSpec(server.url(path)), origin="cli", poll_interval=3600)
    with Fetcher(settings) as fetcher:
        worker = Worker(db, Pipeline(db, fetcher, settings), settings)
        try:
            outcomes = {o.url: o for o in worker.poll_now([server.url(p) for p in feeds])}
        finally:
            worker.shutdown()
    return {path: outcomes[server.url(path)] for path in feeds}


def claim_and_poll(db: Database, pipeline: Pipeline, url: str, *, add: bool = False) -> PollOutcome:
    """Claim one feed (due or not) as a worker does, and poll it; `add` first adds it as a source
    (when it is not one yet)."""
    with db.connection() as conn:
        if add and sources_db.get_by_url(conn, url) is None:
            sources_db.add(conn, SourceSpec(url), origin="cli", poll_interval=3600)
        [source] = sources_db.claim_due(conn, owner="test", limit=1, lease_seconds=60, urls=[url])
    return pipeline.update(source, "test")
