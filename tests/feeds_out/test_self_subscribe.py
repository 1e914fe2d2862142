"""The project's own ingest pipeline subscribed to its own filtered feed, served by uvicorn on
127.0.0.1: every matching post arrives exactly once across several polls, and later ones too."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from aggregator.db import Database
from tests.api.conftest import add_sources
from tests.feeds_out.conftest import Site, stored
from tests.feeds_out.test_caching import publish_later_items


@pytest.fixture
def served(live_site: Site) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(live_site.client.app, host="127.0.0.1", port=port, log_config=None, access_log=False,
                            lifespan="off")  # the TestClient already runs the app's lifespan
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=15)


def linked(db: Database, source_id: int) -> list[int]:
    with db.connection() as conn:
        return [r[0] for r in conn.execute(
            "SELECT post_id FROM post_sources WHERE source_id = %(s)s ORDER BY post_id", {"s": source_id})]


def test_pipeline_reads_its_own_feed_exactly_once(live_site: Site, served: str) -> None:
    db, settings = live_site.db, live_site.settings
    url = f"{served}/feeds/atom?country=AF"
    [own] = add_sources(db, _Server(url), ["own"]).values()
    total = len(stored(db))
    outcomes = []
    for _ in range(3):  # the first poll takes the posts; the next ones are answered 304
        outcomes.append(_poll_any(db, settings, url))
        matching = sorted(r.id for r in stored(db, lambda r: "AF" in r.countries))
        assert linked(db, own) == matching, "each matching post once, linked to the stored article"
        assert len(stored(db)) == total, "the feed's entries were stored again as new posts"
    assert outcomes == ["ok", "not_modified", "not_modified"]
    publish_later_items(live_site)
    total = len(stored(db))
    assert _poll_any(db, settings, url) == "ok"
    assert linked(db, own) == sorted(r.id for r in stored(db, lambda r: "AF" in r.countries))
    assert len(stored(db)) == total


class _Server:
    """add_sources wants something with .url(path); here the path is the whole URL."""

    def __init__(self, url: str) -> None:
        self._url = url

    def url(self, _path: str) -> str:
        return self._url


def _poll_any(db: Database, settings: object, url: str) -> str:
    from aggregator.ingest.fetch import Fetcher
    from aggregator.ingest.pipeline import Pipeline
    from aggregator.ingest.worker import Worker

    with Fetcher(settings) as fetcher:  # type: ignore[arg-type]
        worker = Worker(db, Pipeline(db, fetcher, settings), settings)  # type: ignore[arg-type]
        try:
            [outcome] = worker.poll_now([url])
        finally:
            worker.shutdown()
    return outcome.outcome
