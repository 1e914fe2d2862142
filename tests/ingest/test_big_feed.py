"""A feed of 100,000 entries, served by the local feed server and polled by a real `aggregator poll`
process with its parse pool: stored completely in one poll, with the worker under 400 MB.

A feed of 20,000 entries failed at every poll ("out of shared memory": one lock per new URL in one
transaction), and the worker retried it every lease, forever. About 35 s on two cores, most of it
feedparser reading 16 MB in the parse process; bench/bench_big_feed.py measures the same run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aggregator.db import Database
from aggregator.db import sources as sources_db
from aggregator.db.sources import SourceSpec
from tests.support.bigfeed import ProcessTreePeaks, entry_url, rss_feed
from tests.support.feedserver import FeedServer
from tests.support.processes import finish

ENTRIES = 100_000
WORKER_MAX_MB = 400


@pytest.mark.timeout(240)
def test_a_feed_of_100000_entries_is_stored_in_one_poll_by_a_worker_under_400_mb(
    db: Database, database_url: str, feed_server: FeedServer, tmp_path: Path
) -> None:
    body = rss_feed(ENTRIES)
    feed_server.serve("/big.xml", body, headers={"Content-Type": "application/rss+xml"})
    url = feed_server.url("/big.xml")
    with db.connection() as conn:
        sources_db.add(conn, SourceSpec(url), origin="cli", poll_interval=3600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGGREGATOR_")}
    env.update({
        "DATABASE_URL": database_url, "AGGREGATOR_ALLOW_PRIVATE_NETWORKS": "true",
        "AGGREGATOR_SYNC_FEEDS_FILE": "false", "AGGREGATOR_DATA_DIR": str(tmp_path / "var"),
        "AGGREGATOR_FEEDS_FILE": str(tmp_path / "feeds.yaml"),
        "AGGREGATOR_PARSE_PROCESSES": "2",  # what 0 (the default) means on a two-core machine
        "AGGREGATOR_MAX_ENTRIES_PER_POLL": str(ENTRIES),
        "AGGREGATOR_FETCH_DEADLINE": "60", "AGGREGATOR_LOG_LEVEL": "WARNING",
    })
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "aggregator", "poll", "--feed", url], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with ProcessTreePeaks(proc.pid) as peaks:
        out, err = finish(proc, 200, what="the poll of a 100,000-entry feed")
    seconds = time.monotonic() - started
    print(f"{ENTRIES} entries ({len(body) / 1e6:.1f} MB) in {seconds:.1f} s; peak RSS: worker "
          f"{peaks.main_mb:.0f} MB, parse process {peaks.children_mb:.0f} MB")

    assert proc.returncode == 0, err
    assert f"new={ENTRIES} " in out, out
    with db.connection() as conn:
        stored = conn.execute("SELECT count(*), count(DISTINCT url) FROM posts").fetchone()
        newest = conn.execute("SELECT url FROM posts ORDER BY published_at DESC LIMIT 1").fetchone()
        source = sources_db.get_by_url(conn, url)
    assert stored == (ENTRIES, ENTRIES)
    assert newest == (entry_url(0),)
    assert source is not None and (source.consecutive_failures, source.last_error) == (0, None)
    assert peaks.main_mb < WORKER_MAX_MB, f"the worker peaked at {peaks.main_mb:.0f} MB"
