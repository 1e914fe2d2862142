"""Retag benchmark: `retag` of N stored posts (default 100,000) with the parse pool on every core.

Run from the project root:

    python -m bench.bench_retag [--posts 100000] [--batch-size 500] [--processes 0]

Seeds a fresh database (on TEST_DATABASE_URL / DATABASE_URL's server, else an embedded PostgreSQL in a
temporary folder) with N posts by COPY: the texts of ../shared/data/tagging/dev.jsonl repeated (generated
regional-security sentences when that file is absent), each with a distinct title; then times
aggregator.ingest.retag.retag() over all of them and checks every post got its tags. Cleans up after itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import psycopg

from aggregator.db import Database
from aggregator.ingest.retag import retag
from bench.bench_ingest import postgres_server
from tests.support.database import fresh_database
from tests.support.shared import SHARED_DATA

DEV = SHARED_DATA / "tagging" / "dev.jsonl"
FALLBACK = [
    ("Kazakhstan and Russia expand military cooperation",
     "Kazakh and Russian officers met in Astana to discuss joint exercises near the Afghan border, "
     "where Taliban fighters and drug traffickers are active."),
    ("Protests in Tbilisi", "Georgian police detained dozens of protesters outside parliament."),
]


def texts() -> list[tuple[str, str]]:
    if DEV.exists():
        return [(r["title"], r["text"]) for r in map(json.loads, DEV.read_text("utf-8").splitlines()) if r]
    return FALLBACK


def seed(url: str, count: int) -> None:
    corpus = texts()
    with psycopg.connect(url) as conn:
        source = conn.execute(
            "INSERT INTO sources (url, poll_interval) VALUES ('https://bench.invalid/feed', 3600) RETURNING id"
        ).fetchone()[0]  # type: ignore[index]
        with conn.cursor().copy(
            "COPY posts (dedup_key, url, title, published_at, html, text, summary, content_hash, source_id)"
            " FROM STDIN"
        ) as copy:
            for n in range(count):
                title, text = corpus[n % len(corpus)]
                copy.write_row((f"bench:{n}", f"https://bench.invalid/{n}", f"{title} ({n})",
                                "2026-01-01T00:00:00Z", text, text, text[:300], str(n), source))
        conn.execute("ANALYZE posts")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--processes", type=int, default=0, help="0: one per core")
    args = parser.parse_args()
    processes = args.processes or os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bench-retag-") as tmp, \
            postgres_server(Path(tmp)) as (server_url, _pid, where), \
            fresh_database(server_url, prefix="bench_retag") as url:
        t0 = time.perf_counter()
        seed(url, args.posts)
        seeded = time.perf_counter() - t0
        db = Database(url, max_size=2)
        executor = ProcessPoolExecutor(processes) if processes > 1 else None
        t0 = time.perf_counter()
        done = retag(db, executor=executor, batch_size=args.batch_size)
        elapsed = time.perf_counter() - t0
        if executor:
            executor.shutdown()
        with db.connection() as conn:
            untagged = conn.execute("SELECT count(*) FROM posts WHERE taxonomy_version IS NULL").fetchone()
            tag_rows = conn.execute("SELECT count(*) FROM post_tags").fetchone()
        db.close()
    print(f"database: {where}; corpus: {'dev.jsonl texts' if DEV.exists() else 'generated'}")
    print(f"seeded {args.posts} posts by COPY in {seeded:.1f} s")
    print(f"retag: {done} posts in {elapsed:.1f} s = {done / elapsed:.0f} posts/s "
          f"({processes} process(es), batch {args.batch_size}); {tag_rows[0]} tag rows; "  # type: ignore[index]
          f"untagged left: {untagged[0]}")  # type: ignore[index]
    return 0 if untagged == (0,) and done == args.posts else 1


if __name__ == "__main__":
    sys.exit(main())
