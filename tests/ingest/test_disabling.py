"""Which failures disable a source, through the real worker and pipeline against a real local HTTP
server: an address that never serves a feed is given up after AGGREGATOR_DISABLE_AFTER_FAILURES
polls, with the reason in plain words; a feed that is broken for a while and then recovers never is."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from aggregator.cli import main
from aggregator.config import Settings
from aggregator.db import Database
from aggregator.db import sources as sources_db
from aggregator.db.sources import Source, SourceSpec
from aggregator.ingest.fetch import Fetcher
from aggregator.ingest.pipeline import Pipeline, PollOutcome
from aggregator.ingest.worker import Worker
from aggregator.runtime import build_web_app
from tests.support.environment import use_cli_environment
from tests.support.feedserver import RSS_SAMPLE, FeedServer

LIMIT = 3
MALFORMED = b"<?xml version='1.0'?><rss version='2.0'><channel><title>T</title><item><title>cut"


@pytest.fixture
def strict(settings: Settings) -> Settings:
    return settings.model_copy(update={"disable_after_failures": LIMIT})


@pytest.fixture
def worker(db: Database, strict: Settings) -> Iterator[Worker]:
    with Fetcher(strict) as fetcher:
        worker = Worker(db, Pipeline(db, fetcher, strict), strict)
        try:
            yield worker
        finally:
            worker.shutdown()


def add(db: Database, url: str) -> None:
    with db.connection() as conn:
        sources_db.add(conn, SourceSpec(url), origin="cli", poll_interval=3600)


def poll(worker: Worker, url: str) -> PollOutcome | None:
    """One poll of the feed, due or not, as `aggregator poll --feed` does; None once it is disabled."""
    outcomes = worker.poll_now([url])
    return outcomes[0] if outcomes else None


def state(db: Database, url: str) -> Source:
    with db.connection() as conn:
        source = sources_db.get_by_url(conn, url)
    assert source is not None
    return source


def test_a_page_that_is_never_a_feed_disables_its_source(
    db: Database, strict: Settings, worker: Worker, feed_server: FeedServer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    feed_server.html("/news")
    url = feed_server.url("/news")
    add(db, url)

    outcomes = [poll(worker, url) for _ in range(LIMIT)]
    assert [(o.error_kind, o.disabled is not None) for o in outcomes if o] == (
        [("not_a_feed", False)] * (LIMIT - 1) + [("not_a_feed", True)])
    assert poll(worker, url) is None, "a disabled source is not polled again"
    assert feed_server.requests.statuses("/news") == [200] * LIMIT

    source = state(db, url)
    assert not source.enabled and source.last_error_kind == "not_a_feed"
    reason = source.disabled_reason or ""
    assert f"{LIMIT} polls in a row" in reason and "not a feed" in reason, reason

    with TestClient(build_web_app(strict, db)) as client:
        [shown] = client.get("/api/v1/sources").json()
    assert (shown["enabled"], shown["disabled_reason"]) == (False, reason)

    use_cli_environment(monkeypatch, strict.database_url or "", tmp_path)
    capsys.readouterr()
    assert main(["feeds", "list"]) == 0
    assert f"disabled: {reason}" in capsys.readouterr().out

    assert main(["feeds", "add", url]) == 0  # what README says enables it again
    source = state(db, url)
    assert source.enabled and (source.disabled_reason, source.permanent_failures) == (None, 0)


def test_a_malformed_feed_that_recovers_is_not_disabled(
    db: Database, worker: Worker, feed_server: FeedServer
) -> None:
    feed_server.serve("/feed", MALFORMED, headers={"Content-Type": "application/rss+xml"})
    url = feed_server.url("/feed")
    add(db, url)

    broken = [poll(worker, url) for _ in range(LIMIT + 2)]
    assert [(o.error_kind, o.disabled) for o in broken if o] == [("malformed", None)] * (LIMIT + 2)
    assert state(db, url).enabled

    feed_server.serve("/feed", RSS_SAMPLE, headers={"Content-Type": "application/rss+xml"})
    recovered = poll(worker, url)
    assert recovered is not None and (recovered.outcome, recovered.new_posts) == ("ok", 1), recovered
    source = state(db, url)
    assert source.enabled and (source.consecutive_failures, source.permanent_failures) == (0, 0)


def test_recovery_between_pages_starts_the_count_again(
    db: Database, worker: Worker, feed_server: FeedServer
) -> None:
    """Not a feed for a while (a maintenance page), then a feed again: the count starts over."""
    url = feed_server.url("/feed")
    add(db, url)
    for _ in range(2):
        feed_server.html("/feed")
        assert [poll(worker, url) for _ in range(LIMIT - 1)]
        feed_server.serve("/feed", RSS_SAMPLE, headers={"Content-Type": "application/rss+xml"})
        outcome = poll(worker, url)
        assert outcome is not None and outcome.outcome in ("ok", "unchanged"), outcome
    assert state(db, url).enabled
