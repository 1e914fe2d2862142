"""Story clustering benchmark: cost per post with 50,000 active posts, recluster rate, alert time.

Run from the project root (a PostgreSQL server in BENCH_DATABASE_URL or TEST_DATABASE_URL; a fresh
database is created on it and dropped afterwards):

    python -m bench.bench_stories [--active 50000] [--new 500] [--recluster 20000]

Synthetic posts stand in for a busy 72-hour window: events with their own names and numbers
(drawn from a 30,000-name vocabulary), each reported by one to six posts of about 90 words mixed
from a 5,000-word common vocabulary, tagged with one to three of twenty countries. Measured:

1. in memory (stories/cluster.py StoryIndex, what eval-stories runs): features and decision per post
   with the window full;
2. at ingest (ingest/story_stage.py against PostgreSQL, what a poll runs): the posts stored clustered,
   two workers each loading the window into memory (a one-off: time and memory), then new posts
   clustered ten to a transaction by the two in turn, so each turn replays the other's (features
   are computed before the timer: they are item 1's first figure);
3. recluster: the newest --recluster posts replayed and written (ingest/recluster.py), and how many
   posts it moved (0: it landed where the stored clustering was);
4. alerts: daily story counts of 29 days for every country, place and topic, and the surge rule.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg

from aggregator.db import Database
from aggregator.db import stories as stories_db
from aggregator.ingest import story_stage
from aggregator.ingest.recluster import recluster
from aggregator.stories.alerts import WINDOW, surge_alerts
from aggregator.stories.cluster import Params, StoryIndex
from aggregator.stories.features import extract, to_json
from aggregator.tagging.records import KIND_COUNTRY, KIND_TOPIC, Tag
from tests.support.database import fresh_database

COUNTRIES = ["RU", "UA", "KZ", "AF", "CN", "US", "UZ", "TJ", "KG", "GE", "AM", "AZ", "IR", "PK", "TR", "BY",
             "TM", "IN", "MN", "SY"]
TOPICS = ["terrorism", "armed-conflict", "diplomacy", "unrest", "military", "border-security"]
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
WINDOW_HOURS = 72


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice("bdfgklmnprstvz") + rng.choice("aeiou") for _ in range(syllables))


class Generator:
    """Events and their reports, reproducible from a seed."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.common = [_word(self.rng, 2 + i % 2) for i in range(5000)]
        self.names = [_word(self.rng, 3).capitalize() for _ in range(30000)]

    def events(self, count: int, start: datetime, span: timedelta) -> Iterator[tuple[str, str, list[Tag], datetime]]:
        """(title, text, tags, at) of each post, in time order, `count` posts in all."""
        posts = []
        while len(posts) < count:
            names = self.rng.sample(self.names, 4)
            numbers = [str(self.rng.randint(2, 400)) for _ in range(2)]
            countries = self.rng.sample(COUNTRIES, self.rng.randint(1, 3))
            topics = self.rng.sample(TOPICS, 1)
            at = start + span * self.rng.random()
            for _ in range(self.rng.randint(1, 6)):
                words = self.rng.choices(self.common, k=80) + names[: self.rng.randint(2, 4)] + numbers
                self.rng.shuffle(words)
                title = " ".join([names[0], *self.rng.choices(self.common, k=6)])
                tags = ([Tag(KIND_COUNTRY, c, "primary", 1.0, ()) for c in countries]
                        + [Tag(KIND_TOPIC, t, None, 1.0, ()) for t in topics])
                posts.append((title, " ".join(words), tags, at + timedelta(hours=self.rng.random() * 12)))
        posts.sort(key=lambda p: p[3])
        yield from posts[:count]


def percentile(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def bench_memory(gen: Generator, active: int, new: int) -> dict[str, float]:
    window = timedelta(hours=WINDOW_HOURS)
    posts = list(gen.events(active + new, NOW - window, window))
    index = StoryIndex(Params(window=window))
    t0 = time.perf_counter()
    features = [extract(title, text, tags) for title, text, tags, _ in posts]
    extract_ms = (time.perf_counter() - t0) * 1000 / len(posts)
    for i, (f, post) in enumerate(zip(features[:active], posts[:active], strict=True)):
        index.add(i, f, post[3])
    members_before = len(index.members)
    times = []
    for i in range(active, active + new):
        t = time.perf_counter()
        index.add(i, features[i], posts[i][3])
        times.append((time.perf_counter() - t) * 1000)
    return {"extract_ms": extract_ms, "decide_ms_median": statistics.median(times),
            "decide_ms_p99": percentile(times, 0.99), "active_members": members_before,
            "stories": len(index.story_members)}


MEMBERSHIP = "SELECT p.id, k.story_id FROM posts p LEFT JOIN post_story_keys k ON k.post_id = p.id ORDER BY p.id"


def load_posts(conn: psycopg.Connection, gen: Generator, count: int, span: timedelta) -> None:
    """Store `count` posts of the `span` before NOW clustered as ingest would (in memory, one
    index, in date order), by COPY."""
    source = conn.execute("INSERT INTO sources (url, poll_interval) VALUES ('http://bench.example/feed', 3600) "
                          "RETURNING id").fetchone()
    assert source is not None
    posts = list(gen.events(count, NOW - span, span))
    index = StoryIndex(Params(window=timedelta(hours=WINDOW_HOURS)))
    with conn.cursor().copy("COPY posts (id, dedup_key, url, title, published_at, html, text, summary, "
                            "content_hash, source_id, countries, primary_countries, topics, first_seen_at) "
                            "FROM STDIN") as copy:
        for i, (title, text, tags, at) in enumerate(posts, 1):
            countries = [t.code for t in tags if t.kind == KIND_COUNTRY]
            copy.write_row((i, f"bench:{i}", f"http://bench.example/{i}", title, at, "", text, text[:200],
                            str(i), source[0], countries, countries, [t.code for t in tags if t.kind == KIND_TOPIC],
                            at))
    conn.execute("SELECT setval(pg_get_serial_sequence('posts', 'id'), %s)", (len(posts),))
    stories: dict[int, int] = {}
    merged: dict[int, tuple[int, ...]] = {}
    with conn.cursor().copy("COPY post_story_keys (post_id, story_id, at, story_seq, features, quiet) "
                            "FROM STDIN") as copy:
        rows = []
        for i, (title, text, tags, at) in enumerate(posts, 1):
            f = extract(title, text, tags)
            story, decision = index.add(i, f, at)
            stories[i] = story
            merged[i] = decision.merge
            rows.append((i, at, json.dumps(to_json(f))))
        final = {m.post: m.story for m in index.members.values()}
        redirect = {o: stories[i] for i, ms in merged.items() for o in ms}

        def resolve(story: int) -> int:
            while story in redirect:
                story = redirect[story]
            return story

        for i, at, features in rows:
            stories[i] = final.get(i, resolve(stories[i]))
            copy.write_row((i, stories[i], at, i, features, False))
    conn.execute("SELECT setval('story_seq', %s)", (len(posts),))
    firsts: dict[int, int] = {}
    for post, story in stories.items():
        firsts.setdefault(story, post)
    with conn.cursor().copy("COPY stories (id, title, origin_post_id, first_post_id, first_seen_at, last_seen_at) "
                            "FROM STDIN") as copy:
        for story, post in firsts.items():
            copy.write_row((story, posts[post - 1][0], story, post, posts[post - 1][3], posts[post - 1][3]))
    conn.execute("SELECT setval(pg_get_serial_sequence('stories', 'id'), %s)", (len(posts) + 1,))
    stories_db.refresh(conn, sorted(firsts))


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def bench_database(url: str, gen: Generator, active: int, new: int, recluster_posts: int) -> dict[str, float]:
    """Ingest with two workers taking turns (each turn replays the other's), then recluster."""
    result: dict[str, float] = {}
    total = max(active, recluster_posts)
    span = timedelta(hours=WINDOW_HOURS) * (total / active)
    with psycopg.connect(url) as conn:
        t0 = time.perf_counter()
        load_posts(conn, gen, total, span)
        conn.commit()
        conn.execute("ANALYZE")
        conn.commit()
        result["stored_posts"] = total
        result["store_s"] = time.perf_counter() - t0
    params = Params(window=timedelta(hours=WINDOW_HOURS))
    fresh = list(Generator(seed=11).events(new, NOW - timedelta(hours=6), timedelta(hours=6)))
    workers = [story_stage.StoryWindow(params), story_stage.StoryWindow(params)]
    with Database(url, max_size=2) as db:
        for window in workers:  # each worker's one-off load of the window
            before, t = rss_mb(), time.perf_counter()
            with db.connection() as conn:
                stories_db.lock_clustering(conn)
                window.sync(conn)
            result["window_load_s"] = time.perf_counter() - t
            result["window_load_mb"] = rss_mb() - before
            assert window.index is not None
            result["window_posts"] = len(window.index.members)
        times, cpu = [], []
        for number, batch_start in enumerate(range(0, len(fresh), 10)):
            batch = fresh[batch_start: batch_start + 10]
            with db.connection() as conn:
                ids = []
                for title, text, _tags, at in batch:
                    row = conn.execute(
                        """INSERT INTO posts (dedup_key, url, title, published_at, html, text, summary, content_hash)
                           VALUES (%(k)s, %(k)s, %(t)s, %(at)s, '', %(x)s, '', %(k)s) RETURNING id""",
                        {"k": f"new:{batch_start}:{len(ids)}:{at.isoformat()}", "t": title, "at": at, "x": text},
                    ).fetchone()
                    assert row is not None
                    ids.append(row[0])
                posts = [story_stage.ToCluster(pid, title, at, story_stage.features_of(title, text, tags))
                         for pid, (title, text, tags, at) in zip(ids, batch, strict=True)]
                t, c = time.perf_counter(), time.process_time()
                workers[number % 2].cluster(conn, posts)
                times.append((time.perf_counter() - t) * 1000 / len(batch))
                cpu.append((time.process_time() - c) * 1000 / len(batch))
        result["ingest_ms_median"] = statistics.median(times)
        result["ingest_ms_p99"] = percentile(times, 0.99)
        result["ingest_cpu_ms_median"] = statistics.median(cpu)
        result["window_loads"] = sum(w.loads for w in workers)

        with db.connection() as conn:
            row = conn.execute("SELECT min(first_seen_at) FROM (SELECT first_seen_at FROM posts "
                               "ORDER BY first_seen_at DESC LIMIT %s) t", (recluster_posts,)).fetchone()
            assert row is not None
            before = conn.execute(MEMBERSHIP).fetchall()
        t, c = time.perf_counter(), time.process_time()
        done = recluster(db, row[0], params)
        elapsed = time.perf_counter() - t
        result["recluster_posts"] = done
        result["recluster_s"] = elapsed
        result["recluster_cpu_s"] = time.process_time() - c
        result["recluster_posts_per_s"] = done / elapsed
        with db.connection() as conn:
            after = conn.execute(MEMBERSHIP).fetchall()
        result["recluster_changed_posts"] = sum(a != b for a, b in zip(before, after, strict=True))

        today = NOW.date()
        start = datetime.combine(today - timedelta(days=WINDOW), datetime.min.time(), UTC)
        end = datetime.combine(today + timedelta(days=1), datetime.min.time(), UTC)
        times = []
        for _ in range(5):
            t = time.perf_counter()
            with db.connection() as conn:
                rows = [(r.kind, r.code, r.day, r.stories) for r in stories_db.daily_story_counts(conn, start, end)]
            surge_alerts(rows, today)
            times.append((time.perf_counter() - t) * 1000)
        result["alerts_ms_median"] = statistics.median(times)
        result["alert_keys"] = len({(r[0], r[1]) for r in rows})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--active", type=int, default=50000, help="Posts in the 72-hour window.")
    parser.add_argument("--new", type=int, default=500, help="New posts timed.")
    parser.add_argument("--recluster", type=int, default=20000,
                        help="Posts reclustered (above --active, that many are stored, same density).")
    args = parser.parse_args()
    server = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    memory = bench_memory(Generator(), args.active, args.new)
    print("in memory:", {k: round(v, 3) for k, v in memory.items()})
    if not server:
        print("no BENCH_DATABASE_URL / TEST_DATABASE_URL: database parts skipped")
        return
    with fresh_database(server, prefix="aggregator_bench_stories") as url:
        database = bench_database(url, Generator(), args.active, args.new, args.recluster)
    print("database:", {k: round(v, 3) for k, v in database.items()})
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
