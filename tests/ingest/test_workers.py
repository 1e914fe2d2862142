"""Real `aggregator worker` processes sharing one database: no feed polled twice for one due time,
and a worker killed mid-poll loses nothing committed and holds no feed past its lease."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from aggregator.db import Database
from aggregator.db import fetch_log as fetch_log_db
from aggregator.db import sources as sources_db
from aggregator.db.sources import SourceSpec
from tests.support import queries
from tests.support.feedserver import RSS_SAMPLE, Exchange, FeedServer
from tests.support.network import wait_for


def worker_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGGREGATOR_")}
    env.update({
        "DATABASE_URL": database_url,
        "AGGREGATOR_ALLOW_PRIVATE_NETWORKS": "true",
        "AGGREGATOR_SYNC_FEEDS_FILE": "false",
        "AGGREGATOR_PARSE_PROCESSES": "1",
        "AGGREGATOR_FETCH_CONCURRENCY": "4",
        "AGGREGATOR_TICK_SECONDS": "0.2",
        "AGGREGATOR_LOG_LEVEL": "WARNING",
    })
    env.update(extra)
    return env


@contextmanager
def workers(count: int, env: dict[str, str]) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = [subprocess.Popen([sys.executable, "-m", "aggregator", "worker"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(count)]
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def feed(n: int) -> bytes:
    return RSS_SAMPLE.replace(b"http://example.org/1", f"http://example.org/{n}".encode())


def add_sources(db: Database, urls: list[str]) -> None:
    with db.connection() as conn:
        for url in urls:
            sources_db.add(conn, SourceSpec(url), origin="cli", poll_interval=3)


def test_two_workers_poll_each_due_feed_exactly_once(db: Database, database_url: str,
                                                     feed_server: FeedServer) -> None:
    feeds = 24
    for n in range(feeds):
        feed_server.gauge(f"/f{n}", feed(n), hold=0.05)  # slow enough that the two workers overlap
    add_sources(db, [feed_server.url(f"/f{n}") for n in range(feeds)])
    env = worker_env(database_url, AGGREGATOR_MIN_INTERVAL="3", AGGREGATOR_MAX_INTERVAL="3")

    def log_rows() -> list[fetch_log_db.FetchLogEntry]:
        with db.connection() as conn:
            return queries.fetch_log(conn)

    def every_feed_polled(times: int) -> Callable[[], bool]:
        def check() -> bool:
            per_source: dict[int, int] = defaultdict(int)
            for row in log_rows():
                per_source[row.source_id] += 1
            return len(per_source) == feeds and min(per_source.values()) >= times
        return check

    with workers(2, env) as procs:
        wait_for(every_feed_polled(2), 60, what="two full polling cycles")
        for p in procs:
            assert p.poll() is None, p.stderr.read().decode() if p.stderr else ""

    rows = log_rows()
    by_source: dict[int, list[fetch_log_db.FetchLogEntry]] = defaultdict(list)
    for row in rows:
        by_source[row.source_id].append(row)
    for polls in by_source.values():
        due_times = [r.due_at for r in polls]
        assert len(due_times) == len(set(due_times)), "a due time was polled twice"
        starts = sorted(r.started_at for r in polls)
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
        assert all(g >= 2.5 for g in gaps), f"polled again before it was due: {gaps}"
    assert {r.outcome for r in rows} <= {"ok", "unchanged", "not_modified"}
    assert len({r.worker for r in rows}) == 2, "both workers should have taken part"
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) FROM posts").fetchone() == (feeds,)
        assert conn.execute("SELECT count(*) FROM sources WHERE lease_owner IS NOT NULL").fetchone() == (0,)


def test_killed_worker_loses_nothing_and_frees_its_feed_after_the_lease(
    db: Database, database_url: str, feed_server: FeedServer
) -> None:
    for n in range(5):
        feed_server.serve(f"/f{n}", feed(n))
    feed_server.slow("/slow", interval=0.5)  # trickles forever: the worker is mid-poll when killed
    fast = [feed_server.url(f"/f{n}") for n in range(5)]
    slow = feed_server.url("/slow")
    add_sources(db, [*fast, slow])
    lease = 4
    env = worker_env(database_url, AGGREGATOR_LEASE_SECONDS=str(lease), AGGREGATOR_FETCH_DEADLINE="120")

    def posts() -> int:
        with db.connection() as conn:
            row = conn.execute("SELECT count(*) FROM posts").fetchone()
        return int(row[0]) if row else 0

    with workers(1, env) as [proc]:
        wait_for(lambda: posts() == 5 and bool(feed_server.requests.for_path("/slow")), 30, what="the slow poll")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_at = datetime.now(UTC)

    with db.connection() as conn:
        stuck = sources_db.get_by_url(conn, slow)
    assert posts() == 5
    assert stuck is not None and stuck.lease_owner is not None and stuck.lease_until is not None
    assert (stuck.lease_until - killed_at).total_seconds() <= lease

    def slow_polled() -> bool:
        with db.connection() as conn:
            return bool(queries.fetch_log_of_source(conn, stuck.id))

    def answer(exchange: Exchange) -> None:
        exchange.send(200, feed(99), {"Content-Type": "application/rss+xml"})

    feed_server.route("/slow", answer)
    with workers(1, env):
        wait_for(slow_polled, 30, what="another worker to take the feed over once the lease ended")
    with db.connection() as conn:
        [entry] = queries.fetch_log_of_source(conn, stuck.id)
        after = sources_db.get_by_url(conn, slow)
    assert entry.worker != stuck.lease_owner and entry.outcome == "ok"
    assert entry.started_at >= stuck.lease_until
    assert after is not None and after.lease_owner is None
    assert posts() == 6



def test_sigterm_stops_within_the_grace_period_and_releases_leases(
    db: Database, database_url: str, feed_server: FeedServer
) -> None:
    feed_server.serve("/fast", feed(1))
    feed_server.slow("/slow", interval=0.5)
    add_sources(db, [feed_server.url("/fast"), feed_server.url("/slow")])
    env = worker_env(database_url, AGGREGATOR_FETCH_DEADLINE="120", AGGREGATOR_SHUTDOWN_GRACE_SECONDS="1")
    with workers(1, env) as [proc]:
        wait_for(lambda: bool(feed_server.requests.for_path("/slow")), 30, what="the slow poll to start")
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        stopped_in = time.monotonic() - started
    assert proc.returncode == 0
    assert stopped_in < 8
    with db.connection() as conn:
        held = conn.execute("SELECT count(*) FROM sources WHERE lease_owner IS NOT NULL").fetchone()
        posts = conn.execute("SELECT count(*) FROM posts").fetchone()
    assert held == (0,) and posts == (1,)
