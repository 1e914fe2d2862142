"""The database layer against a real PostgreSQL: migrations, idempotent upserts, leases, feed sync."""

from __future__ import annotations

import random
import re
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from aggregator.config import Settings
from aggregator.db import Database
from aggregator.db import migrate as migrate_db
from aggregator.db import posts as posts_db
from aggregator.db import sources as sources_db
from aggregator.db.sources import SourceSpec
from aggregator.errors import ConfigError, DatabaseUnavailable, SchemaVersionError, StorageError
from aggregator.ingest.models import Post
from aggregator.sources.registry import sync_feeds_file
from tests.support.database import fresh_database, server_url
from tests.support.network import free_port, wait_for

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def make_post(n: int, **changes: object) -> Post:
    post = Post(
        dedup_key=f"tag:example.org,2026:post-{n}", guid=f"tag:example.org,2026:post-{n}",
        url=f"https://example.org/posts/{n}", title=f"Post {n}", author="A. Writer",
        published_at=NOW - timedelta(hours=n), updated_at=None, categories=("Kazakhstan",),
        html=f"<p>Body {n}</p>", text=f"Body {n}", summary=f"Body {n}", lang="en", content_hash=f"h{n}",
    )
    return replace(post, **changes)  # type: ignore[arg-type]


def add_source(db: Database, url: str) -> int:
    with db.connection() as conn:
        source, _ = sources_db.add(conn, SourceSpec(url), origin="cli", poll_interval=3600)
    return source.id


def test_migrations_are_recorded_and_idempotent(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert migrate_db.migrate(conn) == []
        assert migrate_db.current_version(conn) == migrate_db.latest_version()
        migrate_db.check_current(conn)


def test_concurrent_migrations_serialize(tmp_path: Path, database_url: str) -> None:
    name = "aggregator_migrate_race"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
    url = psycopg.conninfo.make_conninfo(database_url, dbname=name)
    results: list[list[str]] = []

    def run() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            results.append(migrate_db.migrate(conn))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(r) for r in results) == [0, 0, len(migrate_db.available_migrations())]
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def test_a_database_from_before_story_membership_moved_keeps_every_posts_story() -> None:
    """Migration 0017 drops posts.story_id: each post's story must be in post_story_keys after it,
    whether its row there agreed, disagreed (what readers saw wins) or was missing."""
    with fresh_database(server_url(), migrate=False) as url, psycopg.connect(url, autocommit=True) as conn:
        conn.execute(migrate_db._CREATE_TABLE)
        for migration in migrate_db.available_migrations()[:16]:
            with conn.transaction():
                conn.execute(migration.sql.encode())
                conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                             (migration.version, migration.name))
        conn.execute("INSERT INTO sources (id, url, poll_interval) VALUES (1, 'https://example.org/feed', 3600)")
        conn.execute("INSERT INTO stories (id, origin_post_id, first_seen_at, last_seen_at) "
                     "SELECT i, i, %(at)s, %(at)s FROM generate_series(1, 3) AS i", {"at": NOW})
        conn.execute("INSERT INTO posts (id, dedup_key, title, published_at, html, text, summary, content_hash, "
                     "source_id, first_seen_at, story_id) SELECT i, 'k' || i, 't', %(at)s, '', '', '', 'h' || i, 1, "
                     "%(at)s, CASE WHEN i < 4 THEN i END FROM generate_series(1, 4) AS i", {"at": NOW})
        conn.execute("INSERT INTO post_story_keys (post_id, story_id, at, story_seq, features) "
                     "VALUES (1, 1, %(at)s, 1, '{}'), (2, 3, %(at)s, 2, '{}')", {"at": NOW})
        assert migrate_db.migrate(conn)[0] == "0017_story_membership.sql"
        rows = conn.execute("SELECT p.id, k.story_id FROM posts p LEFT JOIN post_story_keys k ON k.post_id = p.id "
                            "ORDER BY p.id").fetchall()
        assert rows == [(1, 1), (2, 2), (3, 3), (4, None)]
        assert conn.execute("SELECT count(*) FROM information_schema.columns "
                            "WHERE table_name = 'posts' AND column_name = 'story_id'").fetchone() == (0,)


def test_refuses_a_database_newer_than_the_code(db: Database) -> None:
    with db.autocommit_connection() as conn:
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (9999, '9999_future.sql')")
        try:
            with pytest.raises(SchemaVersionError, match="newer than this code"):
                migrate_db.check_current(conn)
            with pytest.raises(SchemaVersionError):
                migrate_db.migrate(conn)
        finally:
            conn.execute("DELETE FROM schema_migrations WHERE version = 9999")


def test_a_long_posts_search_vector_stays_in_its_row_and_only_its_body_moves_out(db: Database) -> None:
    """A search walking the date index reads each post's vector: from the row, not through TOAST."""
    rng = random.Random(3)
    text = " ".join("".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=8)) for _ in range(400))
    sid = add_source(db, "https://example.org/feed")
    with db.connection() as conn:
        posts_db.upsert_for_source(conn, sid, [make_post(1, html=f"<p>{text}</p>", text=text)], NOW)
        toast = conn.execute("SELECT reltoastrelid::regclass::text FROM pg_class WHERE oid = 'posts'::regclass"
                             ).fetchone()[0]  # type: ignore[index]
        moved = conn.execute(f"SELECT count(DISTINCT chunk_id) FROM {toast}").fetchone()[0]  # type: ignore[index]
        vector = conn.execute("SELECT pg_column_size(search) FROM posts").fetchone()[0]  # type: ignore[index]
    assert vector > 2000  # too big for the row by PostgreSQL's default rule: it would have moved out
    assert moved == 2  # the html and the text


def test_upsert_is_idempotent(db: Database) -> None:
    sid = add_source(db, "https://example.org/feed")
    posts = [make_post(i) for i in range(1, 6)]
    with db.connection() as conn:
        first = posts_db.upsert_for_source(conn, sid, posts, NOW)
    with db.connection() as conn:
        second = posts_db.upsert_for_source(conn, sid, posts, NOW)
        assert posts_db.count(conn) == 5
    assert (first.new, first.updated) == (5, 0)
    assert (second.new, second.updated) == (0, 0)
    assert first.post_ids == second.post_ids


def test_edit_updates_in_place(db: Database) -> None:
    sid = add_source(db, "https://example.org/feed")
    with db.connection() as conn:
        posts_db.upsert_for_source(conn, sid, [make_post(1)], NOW)
    edited = make_post(1, text="Body 1, corrected", content_hash="h1b", updated_at=NOW + timedelta(hours=1))
    with db.connection() as conn:
        result = posts_db.upsert_for_source(conn, sid, [edited], NOW + timedelta(hours=2))
        row = conn.execute("SELECT text, updated_at, count(*) OVER () FROM posts").fetchone()
    assert (result.new, result.updated) == (0, 1)
    assert row == ("Body 1, corrected", NOW + timedelta(hours=1), 1)


def test_a_post_gone_from_the_feed_is_kept(db: Database) -> None:
    sid = add_source(db, "https://example.org/feed")
    with db.connection() as conn:
        posts_db.upsert_for_source(conn, sid, [make_post(1), make_post(2)], NOW)
        posts_db.upsert_for_source(conn, sid, [make_post(2), make_post(3)], NOW)
        assert posts_db.count(conn) == 3


def test_same_url_from_two_feeds_is_one_article_linked_to_both(db: Database) -> None:
    a = add_source(db, "https://a.example/feed")
    b = add_source(db, "https://b.example/feed")
    with db.connection() as conn:
        posts_db.upsert_for_source(conn, a, [make_post(1, dedup_key="https://a.example/feed#1", guid="1")], NOW)
        res = posts_db.upsert_for_source(conn, b, [make_post(1, dedup_key="https://b.example/feed#x", guid="x")], NOW)
        assert res.new == 0
        # and on the next poll of b the article is still recognized (through b's own guid now)
        again = posts_db.upsert_for_source(conn, b, [make_post(1, dedup_key="https://b.example/feed#x", guid="x")],
                                           NOW)
        assert again.new == 0
        links = conn.execute("SELECT count(*), count(DISTINCT post_id) FROM post_sources").fetchone()
        assert posts_db.count(conn) == 1
    assert links == (2, 1)


def feed_batch(feed: str, size: int, shared: int) -> list[Post]:
    """`size` new posts of one feed: the article `shared` (its URL is the same in every feed) and
    others only this feed carries."""
    own = [make_post(n, dedup_key=f"{feed}#{n}", guid=str(n), url=f"{feed}/posts/{n}")
           for n in range(1000, 1000 + size - 1)]
    return [make_post(shared, dedup_key=f"{feed}#{shared}", guid=str(shared)), *own]


BIG = posts_db.URL_LOCKS_MAX + 1  # a batch of new URLs that takes the one exclusive lock instead of one per URL


@pytest.mark.parametrize(("first_size", "second_size"), [(1, 1), (BIG, 1), (1, BIG), (BIG, BIG)])
def test_two_workers_storing_one_new_url_at_once_make_one_article(
    db: Database, database_url: str, first_size: int, second_size: int
) -> None:
    """Two feeds carrying the same new article, stored by two workers in overlapping transactions:
    the second must wait for the first and link to its post, not insert a second one. Whether
    either batch is small (URLs locked one by one) or big (one lock for all its URLs)."""
    a = add_source(db, "https://a.example/feed")
    b = add_source(db, "https://b.example/feed")
    results: list[posts_db.UpsertResult] = []
    with psycopg.connect(database_url) as first:  # a transaction, left open while the second runs
        posts_db.upsert_for_source(first, a, feed_batch("https://a.example/feed", first_size, 1), NOW)

        def second() -> None:
            with psycopg.connect(database_url) as conn:
                results.append(posts_db.upsert_for_source(
                    conn, b, feed_batch("https://b.example/feed", second_size, 1), NOW))

        worker = threading.Thread(target=second)
        worker.start()
        deadline = time.monotonic() + 10
        with psycopg.connect(database_url, autocommit=True) as watcher:
            while not watcher.execute("SELECT 1 FROM pg_stat_activity WHERE wait_event = 'advisory'").fetchone():
                assert worker.is_alive() and time.monotonic() < deadline, "the second worker did not wait"
        first.commit()
    worker.join(10)
    assert [r.new for r in results] == [second_size - 1], "the second worker linked the first one's post"
    with db.connection() as conn:
        assert posts_db.count(conn) == first_size + second_size - 1
        links = conn.execute("""SELECT count(*), count(DISTINCT post_id) FROM post_sources ps
                                JOIN posts p ON p.id = ps.post_id WHERE p.url = %s""",
                             ("https://example.org/posts/1",)).fetchone()
    assert links == (2, 1)


def test_a_batch_of_many_new_urls_takes_few_locks(db: Database) -> None:
    """Every lock takes a slot of PostgreSQL's shared lock table until the transaction ends; one per
    new URL ran it out ("out of shared memory") on a feed of 20,000 entries, at every poll."""
    sid = add_source(db, "https://example.org/feed")
    posts = [make_post(n) for n in range(1, 20_001)]
    with db.connection() as conn:
        result = posts_db.upsert_for_source(conn, sid, posts, NOW)
        locks = conn.execute("""SELECT count(*) FROM pg_locks
                                WHERE locktype = 'advisory' AND pid = pg_backend_pid()""").fetchone()
    assert result.new == 20_000
    assert locks is not None and locks[0] <= posts_db.URL_LOCKS_MAX + 1
    with db.connection() as conn:
        assert posts_db.count(conn) == 20_000


def test_same_url_twice_in_one_feed_stays_two_posts(db: Database) -> None:
    sid = add_source(db, "https://example.org/feed")
    home = "https://example.org/"
    with db.connection() as conn:
        res = posts_db.upsert_for_source(conn, sid, [make_post(1, url=home), make_post(2, url=home)], NOW)
    assert res.new == 2


def test_two_feeds_do_not_flip_an_article_back_and_forth(db: Database) -> None:
    a = add_source(db, "https://a.example/feed")
    b = add_source(db, "https://b.example/feed")
    full, short = make_post(1, text="full text", content_hash="full"), make_post(1, text="short", content_hash="s")
    with db.connection() as conn:
        posts_db.upsert_for_source(conn, a, [full], NOW)
        assert posts_db.upsert_for_source(conn, b, [short], NOW).updated == 0
        assert conn.execute("SELECT text FROM posts").fetchone() == ("full text",)


def test_claims_never_overlap_and_expired_leases_are_reclaimed(db: Database) -> None:
    for i in range(10):
        add_source(db, f"https://example.org/{i}/feed")
    with db.connection() as c1, db.connection() as c2:
        first = sources_db.claim_due(c1, owner="w1", limit=6, lease_seconds=60)
        second = sources_db.claim_due(c2, owner="w2", limit=6, lease_seconds=60)  # first still uncommitted
    assert len(first) == 6 and len(second) == 4
    assert not {s.id for s in first} & {s.id for s in second}
    with db.connection() as conn:
        assert sources_db.claim_due(conn, owner="w3", limit=10, lease_seconds=60) == []
        conn.execute("UPDATE sources SET lease_until = now() - interval '1 second' WHERE lease_owner = 'w1'")
        reclaimed = sources_db.claim_due(conn, owner="w3", limit=10, lease_seconds=60)
    assert {s.id for s in reclaimed} == {s.id for s in first}


def test_feeds_file_sync_adds_updates_and_disables(db: Database, settings: Settings) -> None:
    settings.feeds_file.write_text(
        "feeds:\n  - url: https://a.example/feed\n    name: A\n    countries: [KZ]\n"
        "  - url: https://b.example/feed\n")
    report = sync_feeds_file(db, settings)
    assert sorted(report.added) == ["https://a.example/feed", "https://b.example/feed"]
    settings.feeds_file.write_text("feeds:\n  - url: https://a.example/feed\n    name: A2\n")
    report = sync_feeds_file(db, settings)
    assert report.disabled == ["https://b.example/feed"] and report.added == []
    with db.connection() as conn:
        rows = {h.source.url: h.source for h in sources_db.list_with_health(conn)}
    assert rows["https://a.example/feed"].name == "A2" and rows["https://a.example/feed"].enabled
    assert not rows["https://b.example/feed"].enabled  # disabled, not deleted
    assert rows["https://b.example/feed"].disabled_reason == "removed from the feeds file"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("feeds: 3\n", "top-level `feeds:` list"),
        ("feeds:\n  - name: x\n", "needs at least a `url`"),
        ("feeds:\n  - url: ftp://x.example/\n", "not an http(s) URL"),
        ("feeds:\n  - url: https://x.example/\n    countries: KZ\n", "countries must be a list"),
        ("feeds:\n  - url: https://x.example/\n    countries: [XX]\n", "entry 1: countries: unknown code 'XX'"),
        ("feeds:\n  - url: https://x.example/\n    topics: [gardening]\n", "topics: unknown code 'gardening'"),
        ("feeds:\n  - url: http://user:pw@x.example/\n", "entry 1: url: a user name or password"),
        ("feeds:\n  - url: https://x.example/\n  - url: https://x.example/\n", "duplicate url"),
        ("feeds: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_feeds_file_is_a_clear_error(db: Database, settings: Settings, text: str, message: str) -> None:
    settings.feeds_file.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        sync_feeds_file(db, settings)


def test_a_connection_lost_mid_transaction_is_unavailable_and_the_next_one_works(database_url: str) -> None:
    """A restart or failover ends sessions under our feet: that is worth retrying (the pipeline
    does), and the pool must hand out a live connection next, not the dead one."""
    database = Database(database_url, max_size=1, wait_seconds=2)
    with database:
        with pytest.raises(DatabaseUnavailable), database.connection() as conn:
            pid = conn.info.backend_pid
            with psycopg.connect(database_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%(pid)s)", {"pid": pid})
            conn.execute("SELECT 1")
        with database.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            assert conn.info.backend_pid != pid


@pytest.mark.parametrize("used", [1, 3])
def test_an_idle_connection_the_server_ended_is_replaced_before_anyone_gets_it(database_url: str, used: int) -> None:
    """A restart ends the sessions the pool holds while they are idle: the next request must get
    a live connection, whatever it was used for last (the pool asks only a connection whose
    socket has something to read)."""
    database = Database(database_url, max_size=1, wait_seconds=2)
    with database:
        for _ in range(used):
            with database.connection() as conn:
                pid = conn.info.backend_pid
                conn.execute("SELECT 1")
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%(pid)s)", {"pid": pid})
            wait_for(lambda: not admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %(pid)s",
                                               {"pid": pid}).fetchone(), timeout=10)
        with database.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            assert conn.info.backend_pid != pid


def test_a_read_is_one_read_only_snapshot_and_its_settings_end_with_it(database_url: str) -> None:
    database = Database(database_url, max_size=1)
    with database:
        with database.read(statement_timeout=2.5) as conn:
            settings = conn.execute("SELECT current_setting('transaction_isolation'), "
                                    "current_setting('transaction_read_only'), current_setting('statement_timeout'), "
                                    "current_setting('work_mem')").fetchone()
            assert settings == ("repeatable read", "on", "2500ms", "16MB")
        with pytest.raises(StorageError, match="read-only"), database.read(statement_timeout=1) as conn:
            conn.execute("CREATE TEMP TABLE t (x int)")
        with pytest.raises(ValueError), database.read(statement_timeout=1) as conn:
            conn.execute("SELECT 1")
            raise ValueError("the page failed")
        with database.connection() as conn:  # the same connection, its settings as they were
            conn.execute("CREATE TEMP TABLE t (x int)")
            conn.execute("INSERT INTO t VALUES (1)")
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
            assert conn.execute("SELECT current_setting('statement_timeout')").fetchone() == ("0",)


def test_a_closed_pool_is_a_plain_storage_error(database_url: str) -> None:
    """At shutdown the pool closes under polls still running; they must fail at once rather than
    retry as if the database were away, which would hold the process past its grace period."""
    database = Database(database_url, max_size=1)
    database.close()
    with pytest.raises(StorageError, match="closed") as raised, database.connection():
        pass
    assert not isinstance(raised.value, DatabaseUnavailable)


def test_a_server_that_is_not_there_fails_the_start_after_the_start_wait() -> None:
    started = time.monotonic()
    with pytest.raises(StorageError, match="cannot connect to the database"):
        Database(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", start_seconds=1.0)
    assert 0.9 <= time.monotonic() - started < 10


def test_rows_built_by_position_refuse_columns_out_of_the_fields_order(db: Database) -> None:
    from aggregator.db.post_filters import TagRow, _in_order

    with db.connection() as conn:
        row = conn.cursor(row_factory=_in_order(TagRow)).execute(
            "SELECT 7 AS post_id, 'country' AS kind, 'KZ' AS code, 'primary' AS role, 2.5::float8 AS score, "
            "NULL::jsonb AS evidence").fetchone()
        assert row == TagRow(7, "country", "KZ", "primary", 2.5, None)
        with pytest.raises(TypeError, match="not the fields of TagRow"):
            conn.cursor(row_factory=_in_order(TagRow)).execute("SELECT 'country' AS kind, 7 AS post_id")


@pytest.mark.parametrize(("words", "parsed"), [
    ("border", "'border'"),  # the same in all three configurations: looked up once
    ("borders", "'border' | 'borders'"),  # English stems it, Russian and 'simple' keep it
    ("Казахстане", "'казахстан' | 'казахстане'"),  # Russian stems it; English and 'simple' keep it
])
def test_a_search_is_parsed_once_per_distinct_reading(db: Database, words: str, parsed: str) -> None:
    """A word read alike by every configuration must not be looked up three times in the word index."""
    with db.connection() as conn:
        got = conn.execute("SELECT search_query(%s)::text", [words]).fetchone()[0]  # type: ignore[index]
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN SELECT id FROM posts p WHERE p.search @@ search_query(%s)", [words]).fetchall())
    assert sorted(got.split(" | ")) == sorted(parsed.split(" | "))
    assert "search_query" not in plan  # computed when planned: the index sees the words themselves


def test_a_search_of_stop_words_only_finds_nothing_and_fails_nothing(db: Database) -> None:
    sid = add_source(db, "https://example.org/feed")
    with db.connection() as conn:
        posts_db.upsert_for_source(conn, sid, [make_post(1, text="the and of", title="The")], NOW)
        found = conn.execute("SELECT count(*) FROM posts p WHERE p.search @@ search_query('the of')").fetchone()
    assert found == (0,)
