"""Stories at ingest, against a real feed server and PostgreSQL: one event from two feeds in two
languages is one story; two workers at once make one story; a bridging post merges two stories
(the older survives, the other redirects); two workers' in-memory windows stay what the database
says, and a rolled-back turn is forgotten; recluster lands where ingest did."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from aggregator.config import Settings
from aggregator.db import Database
from aggregator.db import sources as sources_db
from aggregator.db import stories as stories_db
from aggregator.db.sources import SourceSpec
from aggregator.errors import StorageError
from aggregator.ingest.fetch import Fetcher
from aggregator.ingest.pipeline import Pipeline, PollOutcome
from aggregator.ingest.recluster import recluster
from aggregator.ingest.story_stage import StoryWindow, ToCluster, features_of, params_from
from aggregator.stories.features import from_json, to_json
from tests.stories import samples
from tests.stories.samples import rss
from tests.support.feedserver import FeedServer
from tests.support.polling import claim_and_poll

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def pipeline(db: Database, settings: Settings) -> Iterator[Pipeline]:
    with Fetcher(settings) as fetcher:
        yield Pipeline(db, fetcher, settings)


def poll(db: Database, pipeline: Pipeline, feed_server: FeedServer, path: str, body: bytes) -> PollOutcome:
    feed_server.serve(path, body, headers={"Content-Type": "application/rss+xml"})
    return claim_and_poll(db, pipeline, feed_server.url(path), add=True)


def story_of(db: Database) -> dict[str, int | None]:
    with db.connection() as conn:
        rows = conn.execute("SELECT p.url, k.story_id FROM posts p LEFT JOIN post_story_keys k ON k.post_id = p.id "
                            "ORDER BY p.id").fetchall()
    return {url.rsplit("/", 1)[-1]: story for url, story in rows}


def test_one_event_from_two_feeds_in_two_languages_is_one_story(
        db: Database, pipeline: Pipeline, feed_server: FeedServer) -> None:
    poll(db, pipeline, feed_server, "/en", rss(("derbent-en", samples.DERBENT_EN, NOW - timedelta(hours=3)),
                                               ("kabul", samples.KABUL_EN, NOW - timedelta(hours=2))))
    poll(db, pipeline, feed_server, "/ru", rss(("derbent-ru", samples.DERBENT_RU, NOW - timedelta(hours=1))))
    stories = story_of(db)
    assert stories["derbent-en"] == stories["derbent-ru"] != stories["kabul"]
    assert None not in stories.values()
    with db.connection() as conn:
        story = stories_db.get(conn, stories["derbent-en"] or 0)
        posts = stories_db.posts_of(conn, stories["derbent-en"] or 0)
    assert story is not None and (story.post_count, story.source_count) == (2, 2)
    assert story.title == samples.DERBENT_EN[0]  # the first report's title
    assert [p.url.rsplit("/", 1)[-1] for p in posts if p.url] == ["derbent-en", "derbent-ru"]
    with db.connection() as conn:  # a story nothing joined was stored counted: a recount changes nothing
        alone = stories_db.get(conn, stories["kabul"] or 0)
        stories_db.refresh(conn, [stories["kabul"] or 0])
        recounted = stories_db.get(conn, stories["kabul"] or 0)
    assert alone is not None and recounted is not None
    assert (alone.post_count, alone.source_count) == (1, 1)
    assert replace(alone, updated_at=recounted.updated_at) == recounted


def test_two_workers_storing_one_event_at_once_make_one_story(
        db: Database, settings: Settings, feed_server: FeedServer) -> None:
    bodies = {"/a": rss(("derbent-en", samples.DERBENT_EN, NOW - timedelta(hours=2))),
              "/b": rss(("derbent-ru", samples.DERBENT_RU, NOW - timedelta(hours=1)))}
    sources = []
    for path, body in bodies.items():
        feed_server.serve(path, body, headers={"Content-Type": "application/rss+xml"})
        with db.connection() as conn:
            sources_db.add(conn, SourceSpec(feed_server.url(path)), origin="cli", poll_interval=3600)
            [source] = sources_db.claim_due(conn, owner="test", limit=1, lease_seconds=60,
                                            urls=[feed_server.url(path)])
        sources.append(source)
    barrier = threading.Barrier(2)
    outcomes: list[PollOutcome] = []

    def run(source: sources_db.Source) -> None:
        with Fetcher(settings) as fetcher:
            pipeline = Pipeline(db, fetcher, settings)
            barrier.wait()
            outcomes.append(pipeline.update(source, "test"))

    threads = [threading.Thread(target=run, args=(s,)) for s in sources]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [o.outcome for o in outcomes] == ["ok", "ok"]
    stories = story_of(db)
    assert stories["derbent-en"] == stories["derbent-ru"] is not None


def test_a_bridging_post_merges_two_stories_and_the_older_survives(
        db: Database, pipeline: Pipeline, feed_server: FeedServer) -> None:
    # Two partial reports that do not match each other, then a full one that matches both.
    first = ("Gunmen attack a church in Derbent", "Gunmen attacked an Orthodox church in Derbent and killed "
             "priest Nikolai Kotelnikov on Sunday evening. " + samples.filler("zt"))
    second = ("Нападение на пост ДПС в Махачкале", "Боевики напали на пост ДПС в Махачкале, погибли 15 "
              "полицейских. " + samples.filler("kv"))
    poll(db, pipeline, feed_server, "/one", rss(("first", first, NOW - timedelta(hours=5))))
    poll(db, pipeline, feed_server, "/two", rss(("second", second, NOW - timedelta(hours=4))))
    before = story_of(db)
    if before["first"] == before["second"]:
        pytest.fail("the partial reports should start two stories for this test to mean anything")
    poll(db, pipeline, feed_server, "/three", rss(("third", samples.DERBENT_EN, NOW - timedelta(hours=3))))
    after = story_of(db)
    older = min(before["first"] or 0, before["second"] or 0)
    assert after == {"first": older, "second": older, "third": older}
    newer = max(before["first"] or 0, before["second"] or 0)
    with db.connection() as conn:
        gone = stories_db.get(conn, newer)
        redirected = stories_db.resolve(conn, newer)
    assert gone is not None and gone.merged_into == older
    assert redirected is not None and redirected.id == older and redirected.post_count == 3


def test_recluster_lands_where_ingest_did(db: Database, pipeline: Pipeline, settings: Settings,
                                          feed_server: FeedServer) -> None:
    poll(db, pipeline, feed_server, "/en", rss(("derbent-en", samples.DERBENT_EN, NOW - timedelta(hours=6)),
                                               ("airport", samples.AIRPORT_EN, NOW - timedelta(hours=5)),
                                               ("kabul", samples.KABUL_EN, NOW - timedelta(hours=4))))
    poll(db, pipeline, feed_server, "/ru", rss(("derbent-ru", samples.DERBENT_RU, NOW - timedelta(hours=3)),
                                               ("nalchik", samples.NALCHIK_RU, NOW - timedelta(hours=2))))
    ingested = story_of(db)
    assert len(set(ingested.values())) == 4
    done = recluster(db, NOW - timedelta(days=1), params_from(settings))
    assert done == 5
    assert story_of(db) == ingested
    # Recluster rewrote assignments in place: the worker's next turn loads its window again.
    assert pipeline.stories.loads == 1
    poll(db, pipeline, feed_server, "/late", rss(("kabul-2", samples.KABUL_EN, NOW - timedelta(hours=1))))
    assert pipeline.stories.loads == 2
    assert story_of(db)["kabul-2"] == ingested["kabul"]


def test_with_stories_off_posts_stand_alone_until_recluster(db: Database, settings: Settings,
                                                            feed_server: FeedServer) -> None:
    """An operator may turn clustering off (it costs each worker the window's memory): polls still
    store every post, with no story and no window, and `recluster` groups them later."""
    off = settings.model_copy(update={"stories": False})
    with Fetcher(off) as fetcher:
        pipeline = Pipeline(db, fetcher, off)
        poll(db, pipeline, feed_server, "/en", rss(("derbent-en", samples.DERBENT_EN, NOW - timedelta(hours=3)),
                                                   ("kabul", samples.KABUL_EN, NOW - timedelta(hours=2))))
        outcome = poll(db, pipeline, feed_server, "/ru",
                       rss(("derbent-ru", samples.DERBENT_RU, NOW - timedelta(hours=1))))
    assert outcome.outcome == "ok" and pipeline.stories is None
    assert story_of(db) == {"derbent-en": None, "kabul": None, "derbent-ru": None}
    assert recluster(db, NOW - timedelta(days=1), params_from(settings)) == 3
    stories = story_of(db)
    assert stories["derbent-en"] == stories["derbent-ru"] != stories["kabul"]


def window_state(window: StoryWindow) -> tuple[dict[int, int], dict[int, datetime]]:
    """What a worker remembers: each post's story, and when each story began."""
    assert window.index is not None
    return ({m.post: m.story for m in window.index.members.values()}, dict(window.index.story_first))


def synced_state(db: Database, window: StoryWindow) -> tuple[dict[int, int], dict[int, datetime]]:
    with db.connection() as conn:
        stories_db.lock_clustering(conn)
        window.sync(conn)
    return window_state(window)


def loaded_state(db: Database, settings: Settings) -> tuple[dict[int, int], dict[int, datetime]]:
    fresh = StoryWindow(params_from(settings))
    with db.connection() as conn:
        stories_db.lock_clustering(conn)
        fresh.load(conn)
    return window_state(fresh)


def test_two_workers_each_with_its_own_window_stay_consistent(
        db: Database, settings: Settings, feed_server: FeedServer) -> None:
    """Two database handles, two pipelines, each window in its own memory: every turn replays what
    the other did, merges included, so both remember exactly what a worker starting now would load."""
    first = ("Gunmen attack a church in Derbent", "Gunmen attacked an Orthodox church in Derbent and killed "
             "priest Nikolai Kotelnikov on Sunday evening. " + samples.filler("zt"))
    second = ("Нападение на пост ДПС в Махачкале", "Боевики напали на пост ДПС в Махачкале, погибли 15 "
              "полицейских. " + samples.filler("kv"))
    with (Database(settings.database_url or "", max_size=2) as other_db, Fetcher(settings) as fetcher_a,
          Fetcher(settings) as fetcher_b):
        a, b = Pipeline(db, fetcher_a, settings), Pipeline(other_db, fetcher_b, settings)
        turns = [(a, db, "/a1", [("kabul", samples.KABUL_EN, NOW - timedelta(hours=9)),
                                 ("first", first, NOW - timedelta(hours=5))]),
                 (b, other_db, "/b1", [("second", second, NOW - timedelta(hours=4))]),
                 (b, other_db, "/b2", [("third", samples.DERBENT_EN, NOW - timedelta(hours=3))]),  # merges
                 (a, db, "/a2", [("derbent-ru", samples.DERBENT_RU, NOW - timedelta(hours=2)),
                                 ("nalchik", samples.NALCHIK_RU, NOW - timedelta(hours=1))])]
        for pipeline, handle, path, items in turns:
            assert poll(handle, pipeline, feed_server, path, rss(*items)).outcome == "ok"
            expected = loaded_state(db, settings)
            assert synced_state(db, a.stories) == expected
            assert synced_state(other_db, b.stories) == expected
        assert (a.stories.loads, b.stories.loads) == (1, 1)  # each loaded once, then only replayed
    stories = story_of(db)
    assert stories["first"] == stories["second"] == stories["third"] == stories["derbent-ru"]
    assert len({stories["kabul"], stories["first"], stories["nalchik"]}) == 3


def insert_post(conn: object, slug: str) -> int:
    row = conn.execute(  # type: ignore[attr-defined]
        "INSERT INTO posts (dedup_key, url, title, text, html, summary, content_hash, published_at) "
        "VALUES (%(k)s, %(k)s, 't', 'x', '', '', %(k)s, now()) RETURNING id",
        {"k": f"http://example.org/{slug}"}).fetchone()
    return int(row[0])


def test_a_turn_rolled_back_is_forgotten(db: Database, settings: Settings) -> None:
    """A poll's transaction that rolls back after clustering (its lease lost, the database gone)
    leaves nothing in the worker's memory: the next turn notices and loads the window again, and a
    report of the same event starts a story rather than joining one that was never stored."""
    window = StoryWindow(params_from(settings))
    features = features_of(*samples.DERBENT_EN, [])
    with pytest.raises(RuntimeError), db.connection() as conn:
        phantom = insert_post(conn, "phantom")
        [phantom_story] = window.cluster(conn, [ToCluster(phantom, "t", NOW, features)])
        raise RuntimeError("rolled back")
    assert window.index is not None and phantom in window.index.members  # remembered, unconfirmed
    with db.connection() as conn:
        post = insert_post(conn, "kept")
        [story] = window.cluster(conn, [ToCluster(post, "t", NOW, features)])
    assert window.loads == 2 and phantom not in window.index.members
    assert story != phantom_story
    assert story_of(db) == {"kept": story}


def test_a_poll_clusters_only_its_newest_posts_up_to_the_cap(
        db: Database, pipeline: Pipeline, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A first poll of a big archive must not hold the clustering lock for minutes: the newest posts
    join stories at once, the rest wait for `recluster`."""
    from aggregator.ingest import story_stage

    monkeypatch.setattr(story_stage, "MAX_CLUSTERED_PER_POLL", 2)
    poll(db, pipeline, feed_server, "/many", rss(
        ("old", samples.KABUL_EN, NOW - timedelta(days=30)),
        ("newer", samples.DERBENT_EN, NOW - timedelta(hours=5)),
        ("newest", samples.DERBENT_RU, NOW - timedelta(hours=1))))
    stories = story_of(db)
    assert stories["old"] is None and stories["newer"] is not None and stories["newest"] is not None


def test_a_write_failing_inside_the_turn_leaves_nothing_behind(db: Database, settings: Settings) -> None:
    """The turn's writes go in one pipeline; one of them failing (here a post that is not stored)
    fails the turn at once, the worker forgets its half-written turn, and the next turn starts
    from what the database holds."""
    window = StoryWindow(params_from(settings))
    features = features_of(*samples.DERBENT_EN, [])
    with db.connection() as conn:
        first = insert_post(conn, "first")
        window.cluster(conn, [ToCluster(first, "t", NOW - timedelta(hours=1), features)])
    with pytest.raises(StorageError, match="is not present"), db.connection() as conn:
        window.cluster(conn, [ToCluster(2**40, "t", NOW, features)])  # no such post
    assert window.index is None
    with db.connection() as conn:
        second = insert_post(conn, "second")
        [story] = window.cluster(conn, [ToCluster(second, "t", NOW, features)])
    assert window.loads == 2
    assert story_of(db) == {"first": story, "second": story}
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) FROM post_story_keys").fetchone() == (2,)


def test_stored_features_come_back_as_they_were(db: Database, settings: Settings) -> None:
    """Features are sent as binary JSON: names with quotes, backslashes and non-Latin letters, as
    a feed may carry them, are read back by the next worker exactly as they were written."""
    base = features_of(*samples.DERBENT_EN, [])
    odd = replace(base, names=base.names | {'o"brien', "back\\slash", "quote'd", "абу-\\\"бакр", "tab\there"},
                  words=base.words + Counter({'say"s': 2, "c:\\path": 1}))
    window = StoryWindow(params_from(settings))
    with db.connection() as conn:
        post = insert_post(conn, "odd")
        window.cluster(conn, [ToCluster(post, "t", NOW, odd)])
    with db.connection() as conn:
        [row] = stories_db.window_rows(conn, NOW - timedelta(days=1))
    assert row.features == json.loads(json.dumps(to_json(odd)))  # as JSON has it: pairs become lists
    assert to_json(from_json(row.features)) == to_json(odd)


def test_after_a_recluster_a_turn_reads_no_rows_it_would_not_replay(db: Database, settings: Settings) -> None:
    """A changed epoch makes the worker load its whole window, so the rows since its place (all of
    a recluster's, perhaps a hundred thousand) are not read under the lock."""
    window = StoryWindow(params_from(settings))
    with db.connection() as conn:
        post = insert_post(conn, "one")
        window.cluster(conn, [ToCluster(post, "t", NOW, features_of(*samples.DERBENT_EN, []))])
    with db.connection() as conn:
        assert [r.post_id for r in stories_db.turn_start(conn, 0, window.epoch, [], 0).rows] == [post]
        stories_db.bump_epoch(conn)
        stale = stories_db.turn_start(conn, 0, window.epoch, [], 2)
    assert stale.epoch == window.epoch + 1 and stale.rows == []
    assert len(stale.seqs) == len(stale.story_ids) == 2
