"""Filtered-feed benchmark: 1,000,000 posts, a 50-entry Atom feed on a country + topic filter and its
304 answer, measured over loopback by wrk from a separate process.

    python -m bench.bench_feeds seed [--clone]   # --clone: copy bench_api.py's seeded database
    python -m bench.bench_feeds run [--duration 10] [--connections 8]

The posts are bench_api.py's (its `seed` is imported, not rewritten), in a database of their own
(aggregator_bench_feeds in the same embedded server, --pgdata) so the two benchmarks never meet.
`run` starts `aggregator serve` twice: with the feed cache (what production runs: a poll between two
post changes is answered from memory) and with AGGREGATOR_FEEDS_CACHE_ENTRIES=0, where every request
reads the database — the cost right after a post changed (cold 304: the narrow query only; cold 200:
both queries and the rendering).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from bench import bench_api  # the seeding and the wrk helpers of the API benchmark
from tests.support.database import EmbeddedServer

DB_NAME = "aggregator_bench_feeds"
PATH = "/feeds/atom?country=KZ&topic=terrorism"
TARGETS = {"304": 10.0, "full": 60.0}  # p99 ms


def database(pgdata: str, *, clone: bool = False, fresh: bool = False) -> str:
    base = EmbeddedServer(Path(pgdata), keep_running=True).url
    with psycopg.connect(base, autocommit=True) as conn:
        if fresh or clone:
            conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone():
            template = " TEMPLATE aggregator_bench" if clone else ""
            conn.execute(f"CREATE DATABASE {DB_NAME}{template}")
    url = psycopg.conninfo.make_conninfo(base, dbname=DB_NAME)
    from aggregator.db import migrate as migrate_db

    with psycopg.connect(url, autocommit=True) as conn:
        migrate_db.migrate(conn)  # 0004: saved feeds and the change signal
    return url


def load() -> str:
    """The machine's load average (1/5/15 min): other engineers' runs share it."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def wrk(base: str, seconds: int, args: argparse.Namespace, headers: dict[str, str]) -> str:
    command = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    return subprocess.run([*command, base + PATH], check=True, capture_output=True, text=True).stdout


def scenario(base: str, name: str, kind: str, args: argparse.Namespace, headers: dict[str, str]) -> dict[str, object]:
    wrk(base, args.warmup, args, headers)
    before = load()
    result = {"scenario": name, "target_p99_ms": TARGETS[kind], **bench_api.parse_wrk(wrk(base, args.duration, args,
                                                                                             headers))}
    result["load"] = f"{before} -> {load()}"
    print(f"{name:40} p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f} ms  {result['rps']:7.0f} req/s  "
          f"errors {result['errors']:.0f}  load {result['load']}", file=sys.stderr)
    return result


def measure(url: str, args: argparse.Namespace, *, cache: bool) -> list[dict[str, object]]:
    os.environ["AGGREGATOR_FEEDS_CACHE_ENTRIES"] = "512" if cache else "0"
    server = bench_api.start_server(url, args.port)
    base = f"http://127.0.0.1:{args.port}"
    try:
        with urllib.request.urlopen(base + PATH, timeout=30) as response:
            etag = response.headers["ETag"]
            entries = response.read().count(b"<entry")
        assert entries == 50, entries
        label = "cached" if cache else "no cache (right after a change)"
        return [scenario(base, f"full 50-entry Atom, {label}", "full", args, {}),
                scenario(base, f"304, {label}", "304", args, {"If-None-Match": etag})]
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["seed", "run"])
    parser.add_argument("--pgdata", default="/tmp/aggregator-bench-api-pg", help="bench_api.py's embedded server")
    parser.add_argument("--clone", action="store_true", help="seed: copy bench_api.py's database instead")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.command == "seed":
        url = database(args.pgdata, clone=args.clone, fresh=not args.clone)
        if not args.clone:
            bench_api.seed(url, args.rows)
        return
    url = database(args.pgdata)
    results = measure(url, args, cache=True) + measure(url, args, cache=False)
    print(f"# {platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, wrk -t{args.threads} -c{args.connections} -d{args.duration}s")
    print("| scenario | p50 ms | p99 ms | req/s | p99 target ms | load (1/5/15 min) before -> after |")
    print("|---|---:|---:|---:|---:|---|")
    for r in results:
        print(f"| {r['scenario']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['rps']:.0f} | "
              f"{r['target_p99_ms']:.0f} | {r['load']} |")


if __name__ == "__main__":
    main()
