"""The whole ingest path against a real local HTTP server and a real PostgreSQL:
fetch -> parse -> normalize -> store, and every failure recorded on its own source."""

from __future__ import annotations

import html
import logging
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest

from aggregator.config import Settings
from aggregator.db import Database
from aggregator.db import sources as sources_db
from aggregator.db.sources import Source, SourceSpec
from aggregator.ingest.fetch import Fetcher
from aggregator.ingest.normalize import canonical_url
from aggregator.ingest.pipeline import Pipeline, PollOutcome
from aggregator.ingest.worker import Worker
from tests.support.feedserver import RSS_SAMPLE, Exchange, FeedServer
from tests.support.network import wait_for, wait_until
from tests.support.polling import claim_and_poll
from tests.support.shared import SHARED_DATA
from tests.support.tcpproxy import DatabaseProxy

DATA = Path(__file__).parents[1] / "data" / "feeds"
SHARED_FEEDS = SHARED_DATA / "feeds"
FEED_FILES = sorted(p for p in SHARED_FEEDS.glob("*/*") if p.suffix in {".xml", ".atom", ".rss"})


@pytest.fixture
def pipeline(db: Database, settings: Settings) -> Iterator[Pipeline]:
    with Fetcher(settings) as fetcher:
        yield Pipeline(db, fetcher, settings)


def add(db: Database, url: str) -> Source:
    with db.connection() as conn:
        source, _ = sources_db.add(conn, SourceSpec(url), origin="cli", poll_interval=3600)
    return source


def poll(db: Database, pipeline: Pipeline, url: str) -> PollOutcome:
    return claim_and_poll(db, pipeline, url)


def source_state(db: Database, url: str) -> Source:
    with db.connection() as conn:
        source = sources_db.get_by_url(conn, url)
    assert source is not None
    return source


def stored_posts(db: Database, source_id: int) -> list[tuple[str, str | None]]:
    with db.connection() as conn:
        return conn.execute(
            """SELECT p.title, p.url FROM posts p JOIN post_sources ps ON ps.post_id = p.id
               WHERE ps.source_id = %s ORDER BY p.id""", (source_id,)).fetchall()


def _collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@pytest.mark.skipif(not FEED_FILES, reason="../shared/data/feeds is absent: real feed files are not available")
@pytest.mark.parametrize("path", FEED_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_real_feed_ingests_once_and_second_poll_is_304(
    path: Path, db: Database, pipeline: Pipeline, feed_server: FeedServer
) -> None:
    body = path.read_bytes()
    feed_server.serve("/feed", body, etag='"v1"', headers={"Content-Type": "application/xml"})
    url = feed_server.url("/feed")
    source = add(db, url)
    expected = feedparser.parse(body).entries
    first = poll(db, pipeline, url)
    assert first.outcome == "ok", first.describe()
    rows = stored_posts(db, source.id)
    assert first.entries == len(expected)
    # A feed may repeat an entry (CNN repeats 14 of its 86 ids; BBC marks re-listed articles "#1",
    # "#2"): a repeat is the same post, stored once and reported in the poll's warnings.
    repeats = sum(int(m) for w in first.warnings for m in re.findall(r"collapsed (\d+) entr", w))
    distinct = len(expected) - repeats
    assert len(rows) == first.new_posts == distinct
    stored_titles = {_collapse(t) for t, _ in rows}
    feed_titles = {_collapse(html.unescape(re.sub(r"<[^>]+>", "", e.title))) for e in expected if e.get("title")}
    if distinct == len(expected):  # (entries without a title get one made from their text)
        assert feed_titles <= stored_titles
    expected_urls = {canonical_url(e.link, url) for e in expected if e.get("link")} - {None}
    assert {u for _, u in rows if u} == expected_urls

    second = poll(db, pipeline, url)
    assert (second.outcome, second.new_posts) == ("not_modified", 0)
    assert feed_server.requests.statuses("/feed") == [200, 304]
    assert len(stored_posts(db, source.id)) == distinct


def test_server_ignoring_validators_is_caught_by_the_body_hash(
    db: Database, pipeline: Pipeline, feed_server: FeedServer
) -> None:
    feed_server.serve("/feed", RSS_SAMPLE, etag='"v1"', honour_validators=False)
    url = feed_server.url("/feed")
    add(db, url)
    assert poll(db, pipeline, url).outcome == "ok"
    second = poll(db, pipeline, url)
    assert (second.outcome, second.status) == ("unchanged", 200)
    assert feed_server.requests.for_path("/feed")[1].header("If-None-Match") == '"v1"'


def test_a_body_cut_short_keeps_its_whole_entries_and_is_fetched_whole_next_time(
    db: Database, pipeline: Pipeline, feed_server: FeedServer
) -> None:
    """The cut-off response carries the whole feed's ETag: keeping it would get a 304 next time,
    and the entries lost in the cut would never be read."""
    body = (DATA / "blogger_rss.xml").read_bytes()
    items = body.count(b"</item>")
    assert items == 3
    cut = body.index(b"</item>", body.index(b"</item>") + 1) + len(b"</item>") + 40  # inside the last item
    url = feed_server.url("/feed")
    feed_server.serve("/feed", body[:cut], etag='"whole"')
    source = add(db, url)
    first = poll(db, pipeline, url)
    assert (first.outcome, first.new_posts) == ("ok", 2), first.describe()
    assert any("cut short" in w for w in first.warnings)
    assert source_state(db, url).etag is None
    feed_server.serve("/feed", body, etag='"whole"')
    second = poll(db, pipeline, url)
    assert feed_server.requests.for_path("/feed")[1].header("If-None-Match") is None
    assert (second.outcome, second.new_posts) == ("ok", items - 2), second.describe()
    assert len(stored_posts(db, source.id)) == items
    assert source_state(db, url).etag == '"whole"'


def test_a_poll_whose_database_goes_away_retries_its_write_and_stores_once(
    db: Database, settings: Settings, feed_server: FeedServer, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The database restarts while a poll is fetching: the fetched and parsed feed is not thrown
    away, the write is retried until the database is back, and nothing is stored twice."""
    arrived, release = threading.Event(), threading.Event()

    def held_feed(exchange: Exchange) -> None:
        arrived.set()
        release.wait(10)
        exchange.send(200, RSS_SAMPLE, {"Content-Type": "application/rss+xml"})

    feed_server.route("/held", held_feed)
    url = feed_server.url("/held")
    add(db, url)
    caplog.set_level(logging.WARNING, logger="aggregator.ingest.pipeline")
    outcomes: list[PollOutcome] = []
    with (DatabaseProxy(database_url) as proxy, Database(proxy.url, max_size=2, wait_seconds=1) as through_proxy,
          Fetcher(settings) as fetcher):
        pipeline = Pipeline(through_proxy, fetcher, settings)
        with db.connection() as conn:
            [source] = sources_db.claim_due(conn, owner="test", limit=1, lease_seconds=60, urls=[url])
        polling = threading.Thread(target=lambda: outcomes.append(pipeline.update(source, "test")))
        polling.start()
        assert arrived.wait(10), "the poll reached the feed"
        proxy.cut()
        release.set()
        deadline = time.monotonic() + 20
        while "poll.store_retry" not in caplog.text:
            assert time.monotonic() < deadline and polling.is_alive(), caplog.text
            time.sleep(0.05)
        proxy.restore()
        polling.join(30)
    [outcome] = outcomes
    assert (outcome.outcome, outcome.new_posts) == ("ok", 1), outcome.describe()
    assert len(stored_posts(db, source.id)) == 1
    assert source_state(db, url).lease_owner is None


def test_edited_post_is_updated_in_place(db: Database, pipeline: Pipeline, feed_server: FeedServer) -> None:
    feed_server.serve("/feed", RSS_SAMPLE)
    url = feed_server.url("/feed")
    source = add(db, url)
    poll(db, pipeline, url)
    feed_server.serve("/feed", RSS_SAMPLE.replace(b"First post", b"First post, corrected"))
    outcome = poll(db, pipeline, url)
    assert (outcome.new_posts, outcome.updated_posts) == (0, 1)
    with db.connection() as conn:
        assert conn.execute("SELECT text FROM posts").fetchall() == [("First post, corrected",)]
    assert len(stored_posts(db, source.id)) == 1


def test_blogger_atom_and_rss_forms_store_each_post_once(
    db: Database, pipeline: Pipeline, feed_server: FeedServer
) -> None:
    feed_server.serve("/feeds/posts/default", (DATA / "blogger_atom.xml").read_bytes())
    feed_server.serve("/feeds/posts/default?alt=rss", (DATA / "blogger_rss.xml").read_bytes())
    atom, rss = feed_server.url("/feeds/posts/default"), feed_server.url("/feeds/posts/default?alt=rss")
    a, r = add(db, atom), add(db, rss)
    first, second = poll(db, pipeline, atom), poll(db, pipeline, rss)
    assert first.new_posts == first.entries > 0
    assert (second.entries, second.new_posts) == (first.entries, 0)
    assert sorted(stored_posts(db, a.id)) == sorted(stored_posts(db, r.id))
    with db.connection() as conn:
        keys = [k for (k,) in conn.execute("SELECT dedup_key FROM posts").fetchall()]
    assert len(keys) == first.entries and all(k.startswith("tag:blogger.com,1999:blog-") for k in keys)


@pytest.mark.parametrize("status", [301, 308])
def test_permanent_redirect_moves_the_stored_url(
    status: int, db: Database, pipeline: Pipeline, feed_server: FeedServer, settings: Settings
) -> None:
    feed_server.redirect("/old", "/new", status=status)
    feed_server.serve("/new", RSS_SAMPLE)
    old, new = feed_server.url("/old"), feed_server.url("/new")
    settings.feeds_file.write_text(f"feeds:\n  - url: {old}\n")
    from aggregator.sources.registry import sync_feeds_file

    sync_feeds_file(db, settings)
    outcome = poll(db, pipeline, old)
    assert outcome.moved_to == new
    moved = source_state(db, old)
    assert (moved.url, moved.previous_urls) == (new, [old])
    assert sync_feeds_file(db, settings).added == []  # the config's old URL still names this source
    with db.connection() as conn:
        assert len(sources_db.list_with_health(conn)) == 1


def test_temporary_redirect_keeps_the_stored_url(db: Database, pipeline: Pipeline, feed_server: FeedServer) -> None:
    feed_server.redirect("/old", "/new", status=302)
    feed_server.serve("/new", RSS_SAMPLE)
    old = feed_server.url("/old")
    add(db, old)
    assert poll(db, pipeline, old).outcome == "ok"
    assert source_state(db, old).url == old


HOSTILE = [
    # (route set-up, expected outcome kind, temporary?)
    (lambda s: s.serve("/f", b"", status=404), "http_404", False),
    (lambda s: s.serve("/f", b"", status=410), "http_410", False),
    (lambda s: s.throttled("/f", status=429, retry_after="7200"), "http_429", True),
    (lambda s: s.throttled("/f", status=503, retry_after="Wed, 21 Oct 2037 07:28:00 GMT"), "http_503", True),
    (lambda s: s.redirect_loop("/f", "/g"), "too_many_redirects", False),
    (lambda s: s.slow("/f", interval=0.2), "timeout", True),
    (lambda s: s.huge("/f", 3 * 1024 * 1024), "too_large", False),
    (lambda s: s.huge("/f", 3 * 1024 * 1024, content_length=False), "too_large", False),
    (lambda s: s.gzip_bomb("/f", 64 * 1024 * 1024), "too_large", False),
    (lambda s: s.html("/f"), "not_a_feed", None),
]


@pytest.mark.parametrize(("setup", "kind", "temporary"), HOSTILE, ids=[h[1] + str(i) for i, h in enumerate(HOSTILE)])
def test_hostile_feed_is_recorded_and_other_feeds_unaffected(
    setup: object, kind: str, temporary: bool | None, db: Database, settings: Settings, feed_server: FeedServer
) -> None:
    settings = replace_settings(settings, fetch_deadline=1.5, max_body_bytes=2 * 1024 * 1024)
    setup(feed_server)  # type: ignore[operator]
    feed_server.serve("/good", RSS_SAMPLE)
    bad, good = feed_server.url("/f"), feed_server.url("/good")
    add(db, bad)
    add(db, good)
    with Fetcher(settings) as fetcher:
        worker = Worker(db, Pipeline(db, fetcher, settings), settings)
        outcomes = {o.url: o for o in worker.poll_now([bad, good])}
        worker.shutdown()
    assert outcomes[good].outcome == "ok" and outcomes[good].new_posts == 1
    assert outcomes[bad].outcome == "error"
    assert outcomes[bad].error_kind == kind, outcomes[bad].describe()
    state = source_state(db, bad)
    assert (state.last_error_kind, state.consecutive_failures, state.lease_owner) == (kind, 1, None)
    assert state.next_poll_at > datetime.now(UTC)
    if kind == "http_429":
        assert (state.next_poll_at - datetime.now(UTC)).total_seconds() > 7000
    if kind == "http_503":  # a Retry-After years away is honoured up to a week, not for years
        assert (state.next_poll_at - datetime.now(UTC)).days >= 6
    assert source_state(db, good).consecutive_failures == 0


def replace_settings(settings: Settings, **changes: object) -> Settings:
    return settings.model_copy(update=changes)


@pytest.mark.parametrize("address", ["127.0.0.1", "169.254.169.254", "10.0.0.1"])
def test_private_addresses_are_refused_by_default(address: str, db: Database, settings: Settings) -> None:
    strict = replace_settings(settings, allow_private_networks=False)
    url = f"http://{address}/feed.xml"
    add(db, url)
    with Fetcher(strict) as fetcher:
        outcome = poll(db, Pipeline(db, fetcher, strict), url)
    assert (outcome.outcome, outcome.error_kind) == ("error", "blocked_address")
    assert source_state(db, url).last_error_kind == "blocked_address"


def test_repeated_permanent_failures_disable_the_feed(
    db: Database, settings: Settings, feed_server: FeedServer
) -> None:
    settings = replace_settings(settings, disable_after_failures=3)
    feed_server.serve("/gone", b"", status=410)
    url = feed_server.url("/gone")
    add(db, url)
    with Fetcher(settings) as fetcher:
        pipeline = Pipeline(db, fetcher, settings)
        outcomes = [poll(db, pipeline, url) for _ in range(3)]
    assert [o.disabled is not None for o in outcomes] == [False, False, True]
    state = source_state(db, url)
    assert not state.enabled and "http_410" in (state.disabled_reason or "")
    with db.connection() as conn:
        assert sources_db.claim_due(conn, owner="x", limit=5, lease_seconds=5, urls=[url]) == []


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("<rss version='2.0'><channel><title>T</title><item><title>Qazaqstan ✓ Ωmega</title>"
         "<guid>a1</guid><description>тест</description></item></channel></rss>", "text/xml"),  # no declared charset
        ("<?xml version='1.0' encoding='iso-8859-1'?><rss version='2.0'><channel><title>T</title>"
         "<item><title>Qazaqstan ✓ Ωmega</title><guid>a1</guid><description>тест</description></item>"
         "</channel></rss>", "application/rss+xml; charset=iso-8859-1"),  # declared wrong
    ],
)
def test_wrong_or_missing_charset_still_ingests(
    body: str, content_type: str, db: Database, pipeline: Pipeline, feed_server: FeedServer
) -> None:
    feed_server.serve("/feed", body.encode("utf-8"), headers={"Content-Type": content_type})
    url = feed_server.url("/feed")
    source = add(db, url)
    outcome = poll(db, pipeline, url)
    assert outcome.outcome == "ok" and outcome.new_posts == 1, outcome.describe()
    [(title, _)] = stored_posts(db, source.id)
    assert "Qazaqstan" in title


def test_dead_server_is_a_temporary_connection_error(db: Database, pipeline: Pipeline) -> None:
    url = "http://127.0.0.1:9/feed"  # discard port: nothing listens
    add(db, url)
    outcome = poll(db, pipeline, url)
    assert (outcome.outcome, outcome.error_kind) == ("error", "connection")
    state = source_state(db, url)
    assert state.enabled and state.consecutive_failures == 1


def test_entity_expansion_bomb_is_not_expanded(db: Database, pipeline: Pipeline, feed_server: FeedServer) -> None:
    feed_server.serve("/feed", (DATA.parent / "hostile" / "entity_bomb.xml").read_bytes())
    url = feed_server.url("/feed")
    source = add(db, url)
    outcome = poll(db, pipeline, url)
    assert outcome.outcome in {"ok", "error"}
    with db.connection() as conn:
        longest = conn.execute("SELECT coalesce(max(length(text) + length(title)), 0) FROM posts").fetchone()
    assert longest is not None and longest[0] < 1000
    assert source_state(db, url).lease_owner is None
    assert len(stored_posts(db, source.id)) <= 1


REGIONAL = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Regional desk</title><link>https://desk.example/</link>
<description>News</description>
<item><title>Kazakhstan and Russia hold joint military exercises</title>
<link>https://desk.example/1</link><guid>https://desk.example/1</guid>
<pubDate>Mon, 06 Jan 2025 10:00:00 GMT</pubDate>
<description>Kazakh and Russian troops held drills near Astana, the defence ministry said.</description></item>
</channel></rss>
"""


def test_posts_are_stored_with_their_tags_and_evidence(
    db: Database, pipeline: Pipeline, feed_server: FeedServer
) -> None:
    feed_server.serve("/feed", REGIONAL)
    url = feed_server.url("/feed")
    add(db, url)
    assert poll(db, pipeline, url).new_posts == 1
    with db.connection() as conn:
        countries, primary, topics, version = conn.execute(
            "SELECT countries, primary_countries, topics, taxonomy_version FROM posts").fetchone()
        rows = conn.execute("SELECT kind, code, role, evidence, taxonomy_version FROM post_tags").fetchall()
        title, text = conn.execute("SELECT title, text FROM posts").fetchone()
    assert {"KZ", "RU"} <= set(primary) <= set(countries)
    assert "military" in topics and version
    kz = next(r for r in rows if r[1] == "KZ")
    assert kz[2] == "primary" and kz[4] == version
    for evidence in kz[3]:
        source = title if evidence["field"] == "title" else text
        assert source[evidence["start"]:evidence["end"]] == evidence["phrase"]

    feed_server.serve("/feed", REGIONAL.replace(b"near Astana", b"near Astana and in Tajikistan"))
    assert poll(db, pipeline, url).updated_posts == 1
    with db.connection() as conn:
        assert "TJ" in conn.execute("SELECT countries FROM posts").fetchone()[0]
        assert conn.execute("SELECT count(*) FROM post_tags WHERE code = 'TJ'").fetchone() == (1,)


def test_shutdown_during_a_tick_polls_what_was_claimed_and_holds_no_lease(
    db: Database, settings: Settings, feed_server: FeedServer
) -> None:
    """A signal lands while the scheduler's tick is still claiming: the claim must not outlive the
    shutdown (a lease kept until it expires) nor be submitted to a pool already shut down."""
    feed_server.serve("/f", RSS_SAMPLE)
    url = feed_server.url("/f")
    add(db, url)
    with db.connection() as blocker, Fetcher(settings) as fetcher:
        worker = Worker(db, Pipeline(db, fetcher, settings), settings)
        blocker.execute("LOCK TABLE sources IN EXCLUSIVE MODE")  # the tick's claim waits here
        ticked: list[int | BaseException] = []

        def tick() -> None:
            try:
                ticked.append(worker.tick())
            except BaseException as e:  # the failure is what is asserted
                ticked.append(e)

        def waiting_on_sources() -> int:
            with db.connection() as conn:
                return conn.execute("SELECT count(*) FROM pg_locks WHERE NOT granted "
                                    "AND relation = 'sources'::regclass").fetchone()[0]

        ticker = threading.Thread(target=tick)
        ticker.start()
        wait_for(waiting_on_sources, 10, what="the tick's claim to wait on the table lock")
        stopper = threading.Thread(target=worker.shutdown)
        stopper.start()
        # a shutdown that does not wait for the claim reaches its release in milliseconds
        wait_until(lambda: waiting_on_sources() >= 2, 1.0)
        blocker.rollback()
        ticker.join(30)
        stopper.join(30)
    assert ticked == [1]
    state = source_state(db, url)
    assert (state.lease_owner, state.lease_until) == (None, None)
    assert state.last_success_at is not None

