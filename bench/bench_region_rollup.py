"""What regions cost the facet rollup: one month's rebuild and a live facet count, with and without.

    python -m bench.bench_region_rollup [--posts 200000] [--runs 3]

Seeds a fresh database (on BENCH_DATABASE_URL / TEST_DATABASE_URL, else an embedded PostgreSQL) with
`--posts` posts in one month, by SQL: countries, topics and places drawn in a fixed pattern that puts
every post in two to five of the shipped taxonomy's regions (Russia in half of them, a North
Caucasus place in a fifth). Then, with the region table empty and with the taxonomy's regions, it
times the rebuild of that month (aggregator.db.facets.refresh) and a live facet count of every
post (live_sql: without the region lookup as the API counts, with it as the reader counts). Times
are the server process's CPU time (read from /proc when the server is on this machine, else wall
time, said so), best of `--runs`.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from aggregator.db import facets as facets_db
from aggregator.query import PostFilter
from aggregator.tagging import load_taxonomy
from tests.support.database import fresh_database, server_url

SEED = """
    INSERT INTO posts (dedup_key, title, published_at, html, text, summary, content_hash, lang, countries, topics,
                       places)
    SELECT 'k' || i, 't', timestamptz '2025-01-01' + (i %% 31) * interval '1 day', '', '', '', 'h', 'en',
           CASE i %% 6 WHEN 0 THEN ARRAY['RU'] WHEN 1 THEN ARRAY['KZ', 'RU'] WHEN 2 THEN ARRAY['UZ', 'TJ']
                      WHEN 3 THEN ARRAY['AF'] WHEN 4 THEN ARRAY['GE', 'AM', 'RU'] ELSE ARRAY['CN'] END,
           CASE i %% 3 WHEN 0 THEN ARRAY['military'] WHEN 1 THEN ARRAY['terrorism', 'diplomacy']
                      ELSE ARRAY['cyber'] END,
           CASE i %% 10 WHEN 0 THEN ARRAY['chechnya'] WHEN 1 THEN ARRAY['dagestan', 'chechnya'] ELSE '{}' END
    FROM generate_series(1, %(posts)s) AS i
"""


def server_cpu(conn: psycopg.Connection) -> Callable[[], float] | None:
    """The backend's CPU seconds so far, when its /proc entry is readable here."""
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
    stat = Path(f"/proc/{pid}/stat")
    if not stat.exists():
        return None
    tick = os.sysconf("SC_CLK_TCK")

    def read() -> float:
        fields = stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick  # utime, stime

    return read


def best(runs: int, clock: Callable[[], float], work: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = clock()
        work()
        times.append(clock() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    regions = facets_db.region_definitions(load_taxonomy(None))
    with fresh_database(server_url(os.environ.get("BENCH_DATABASE_URL")), prefix="bench_regions") as url, \
            psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO sources (url, poll_interval) VALUES ('https://bench.example/feed', 3600)")
        conn.execute(SEED, {"posts": args.posts})
        conn.execute("INSERT INTO post_sources (post_id, source_id, guid) SELECT id, 1, id::text FROM posts")
        conn.execute("VACUUM ANALYZE posts")
        conn.execute("VACUUM ANALYZE post_sources")
        cpu = server_cpu(conn)
        clock, unit = (cpu, "server CPU s") if cpu else (time.perf_counter, "wall s")

        def rebuild() -> None:
            conn.execute("INSERT INTO facet_dirty_months VALUES ('2025-01-01')")
            facets_db.refresh(conn)

        rows = []
        for label, defined in (("no regions", {}), (f"{len(regions)} regions", regions)):
            conn.execute("DELETE FROM facet_regions")
            facets_db.sync_regions(conn, defined)
            took = best(args.runs, clock, rebuild)
            statement = facets_db.live_sql(PostFilter(), regions=bool(defined))  # the API's, the reader's
            count = best(args.runs, clock, lambda s=statement: conn.execute(*s).fetchall())
            size = conn.execute("SELECT count(*) FROM facet_months").fetchone()[0]  # type: ignore[index]
            rows.append((label, took, count, size))
        print(f"{args.posts:,} posts in one month; {unit}, best of {args.runs}; load average "
              f"{os.getloadavg()[0]:.2f}")
        print(f"{'':12} {'rebuild':>9} {'live count':>11} {'rollup rows':>12}")
        for label, took, count, size in rows:
            print(f"{label:12} {took:9.2f} {count:11.2f} {size:12,}")


if __name__ == "__main__":
    main()
