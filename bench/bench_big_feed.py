"""One enormous feed polled once: time, and the peak memory of the worker and of its parse process.

Run from the project root:

    .venv/bin/python -m bench.bench_big_feed [--entries 100000] [--parse-processes 2] [--db URL]

Without --db (or TEST_DATABASE_URL) an embedded PostgreSQL is started in a temporary folder and
deleted afterwards. What one run does: a fresh database; an RSS feed of `--entries`
generated entries (tests/support/bigfeed.py, ~160 bytes each) served by the tests' local feed server
in this process; then a real `aggregator poll --feed URL` in its own process, with
AGGREGATOR_MAX_ENTRIES_PER_POLL set to store them all (unless `--max-entries-per-poll` says otherwise).
Its resident memory and that of its descendants are sampled every 20 ms from this process: "worker"
is the `aggregator poll` process (it fetches, receives the parsed posts, stores them); "parse" is the
largest parse process (feedparser, normalize, tag). With `--parse-processes 1` parsing runs inside
the worker, as it does on a one-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from tests.support.bigfeed import ProcessTreePeaks, rss_feed
from tests.support.database import fresh_database, server_url
from tests.support.feedserver import FeedServer


def run(args: argparse.Namespace, target: str) -> dict[str, object]:
    body = rss_feed(args.entries)
    with FeedServer() as server, tempfile.TemporaryDirectory(prefix="bench-bigfeed-") as tmp:
        server.serve("/big.xml", body, headers={"Content-Type": "application/rss+xml"})
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGGREGATOR_")}
        env.update({
            "DATABASE_URL": target, "AGGREGATOR_ALLOW_PRIVATE_NETWORKS": "true",
            "AGGREGATOR_SYNC_FEEDS_FILE": "false", "AGGREGATOR_DATA_DIR": str(Path(tmp) / "var"),
            "AGGREGATOR_FEEDS_FILE": str(Path(tmp) / "feeds.yaml"),
            "AGGREGATOR_PARSE_PROCESSES": str(args.parse_processes),
            "AGGREGATOR_MAX_ENTRIES_PER_POLL": str(args.max_entries_per_poll or args.entries),
            "AGGREGATOR_MAX_BODY_BYTES": str(max(len(body) * 2, 16 << 20)),
            "AGGREGATOR_FETCH_DEADLINE": "120", "AGGREGATOR_LOG_LEVEL": "WARNING",
        })
        cli = [sys.executable, "-m", "aggregator"]
        subprocess.run([*cli, "feeds", "add", server.url("/big.xml")], env=env, check=True, cwd=tmp,
                       stdout=subprocess.DEVNULL)
        started = time.monotonic()
        proc = subprocess.Popen([*cli, "poll", "--feed", server.url("/big.xml")], env=env, cwd=tmp,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with ProcessTreePeaks(proc.pid) as peaks:
            out, err = proc.communicate()
        seconds = time.monotonic() - started
    with psycopg.connect(target) as conn:
        row = conn.execute("SELECT count(*) FROM posts").fetchone()
    return {
        "entries": args.entries, "body_mb": round(len(body) / 1e6, 1), "parse_processes": args.parse_processes,
        "seconds": round(seconds, 1), "worker_peak_rss_mb": round(peaks.main_mb),
        "parse_peak_rss_mb": round(peaks.children_mb), "posts_stored": row[0] if row else 0,
        "exit": proc.returncode, "output": out.strip().splitlines()[:3], "stderr": err.strip()[-500:],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--parse-processes", type=int, default=2)
    parser.add_argument("--max-entries-per-poll", type=int, default=0, help="0: --entries (store them all)")
    parser.add_argument("--db", default=None, help="PostgreSQL server URL (default: TEST_DATABASE_URL, else embedded)")
    parser.add_argument("--json", action="store_true", help="the report as one JSON line")
    args = parser.parse_args()
    with fresh_database(server_url(args.db, folder_prefix="bench-bigfeed-pg-"), prefix="bench_bigfeed") as target:
        report = run(args, target)
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:20} {value}")
    return 0 if report["exit"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
