"""What one poll may store: at most MAX_ENTRIES_PER_POLL entries (the newest), each field within its
cap; what was not stored in full is a warning on the source, never an error. Real feed server, real
PostgreSQL, the real pipeline."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.cli import main
from aggregator.config import Settings
from aggregator.db import Database
from aggregator.db import sources as sources_db
from aggregator.db.sources import Source
from aggregator.ingest.fetch import Fetcher
from aggregator.ingest.normalize import TITLE_MAX_CHARS, URL_MAX_BYTES
from aggregator.ingest.pipeline import Pipeline, PollOutcome
from tests.support.bigfeed import entry_url, rss_feed
from tests.support.environment import use_cli_environment
from tests.support.feedserver import RSS_SAMPLE, FeedServer
from tests.support.polling import claim_and_poll

CAP = 5


@pytest.fixture
def pipeline(db: Database, settings: Settings) -> Iterator[Pipeline]:
    capped = settings.model_copy(update={"max_entries_per_poll": CAP})
    with Fetcher(capped) as fetcher:
        yield Pipeline(db, fetcher, capped)


def poll(db: Database, pipeline: Pipeline, url: str) -> PollOutcome:
    return claim_and_poll(db, pipeline, url, add=True)


def source_state(db: Database, url: str) -> Source:
    with db.connection() as conn:
        source = sources_db.get_by_url(conn, url)
    assert source is not None
    return source


def stored(db: Database) -> list[tuple[str, str | None, str | None, list[str]]]:
    with db.connection() as conn:
        return conn.execute("SELECT title, url, author, categories FROM posts ORDER BY id").fetchall()


def test_a_feed_over_the_entry_cap_stores_its_newest_entries_and_warns(
    db: Database, database_url: str, pipeline: Pipeline, feed_server: FeedServer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    feed_server.serve("/feed", rss_feed(12, shuffled=True), headers={"Content-Type": "application/xml"})
    url = feed_server.url("/feed")
    outcome = poll(db, pipeline, url)
    assert (outcome.outcome, outcome.entries, outcome.new_posts) == ("ok", 12, CAP), outcome.describe()
    assert sorted(u for _, u, _, _ in stored(db)) == sorted(entry_url(n) for n in range(CAP))
    warning = f"stored the newest {CAP} of 12 entries (AGGREGATOR_MAX_ENTRIES_PER_POLL): 7 older ones were left out"
    assert warning in outcome.warnings
    source = source_state(db, url)
    assert source.last_warnings == [warning]
    assert (source.consecutive_failures, source.last_error, source.enabled) == (0, None, True)
    use_cli_environment(monkeypatch, database_url, tmp_path)
    assert main(["feeds", "list"]) == 0
    assert f"warning: {warning}" in capsys.readouterr().out

    # the same body again (answered from its hash) keeps the warning; a feed within the cap clears it
    assert poll(db, pipeline, url).outcome == "unchanged"
    assert source_state(db, url).last_warnings == [warning]
    feed_server.serve("/feed", RSS_SAMPLE, headers={"Content-Type": "application/xml"})
    assert poll(db, pipeline, url).outcome == "ok"
    assert source_state(db, url).last_warnings == []


def item(title: str, link: str, *, author: str = "", labels: int = 0, label_chars: int = 5) -> str:
    categories = "".join(f"<category>{n:05d}{'x' * (label_chars - 5)}</category>" for n in range(labels))
    return (f"<item><title>{title}</title><link>{link}</link><author>x@example.org ({author or 'A'})</author>"
            f"{categories}<description>Text</description></item>")


def rss(*items: str) -> bytes:
    return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
            f"<link>http://example.org/</link><description>D</description>{''.join(items)}</channel></rss>").encode()


def test_over_long_text_fields_are_cut_and_the_cut_is_a_warning(
    db: Database, pipeline: Pipeline, feed_server: FeedServer
) -> None:
    """A 100,000-character title was stored and served whole."""
    title = " ".join(["word"] * 20_000)  # 100,000 characters
    body = rss(item(title, "http://example.org/1", author="N" * 5_000, labels=300, label_chars=500))
    feed_server.serve("/feed", body, headers={"Content-Type": "application/xml"})
    outcome = poll(db, pipeline, feed_server.url("/feed"))
    assert outcome.outcome == "ok", outcome.describe()
    [(stored_title, link, author, labels)] = stored(db)
    assert len(stored_title) <= TITLE_MAX_CHARS and stored_title.endswith("word…")
    assert link == "http://example.org/1"
    assert author is not None and len(author) <= 200 and author.endswith("…")
    assert len(labels) == 50 and all(len(label) <= 100 for label in labels)
    [warning] = [w for w in outcome.warnings if w.startswith("cut over-long fields")]
    assert "title in 1 entry" in warning and "author in 1 entry" in warning and "categories in 1 entry" in warning
    assert source_state(db, feed_server.url("/feed")).last_warnings == list(outcome.warnings)


def test_an_over_long_link_or_id_is_no_longer_the_whole_feed_failing(
    db: Database, pipeline: Pipeline, feed_server: FeedServer
) -> None:
    """A link or id over what a btree index entry may hold (2,704 bytes) failed the feed's whole
    transaction ("index row size exceeds maximum"), at every poll."""
    noise = "".join(hashlib.sha256(str(n).encode()).hexdigest() for n in range(100))  # 6,400 characters
    long_link = f"http://example.org/{noise}"
    long_id = f"<item><title>Long id</title><guid isPermaLink='false'>{noise}</guid></item>"
    body = rss(item("Long link", long_link), long_id, item("Fine", "http://example.org/fine"))
    feed_server.serve("/feed", body, headers={"Content-Type": "application/xml"})
    outcome = poll(db, pipeline, feed_server.url("/feed"))
    assert (outcome.outcome, outcome.new_posts) == ("ok", 3), outcome.describe()
    assert sorted((t, u) for t, u, _, _ in stored(db)) == [
        ("Fine", "http://example.org/fine"), ("Long id", None), ("Long link", None)]
    assert any(f"url in 1 entry (dropped over {URL_MAX_BYTES:,} bytes)" in w for w in outcome.warnings)
    # the hashed key names the entries as stably as the whole ones did: a new poll adds nothing
    feed_server.serve("/feed", body + b"\n", headers={"Content-Type": "application/xml"})
    again = poll(db, pipeline, feed_server.url("/feed"))
    assert (again.outcome, again.new_posts, again.updated_posts) == ("ok", 0, 0), again.describe()
