"""REST API benchmark: 1,000,000 realistic posts, measured over loopback by wrk from a separate process.

Run from the project root:

    python -m bench.bench_api seed [--rows 1000000]      # once: a few minutes
    python -m bench.bench_api run [--duration 8] [--latency-connections 2] [--connections 16]
    python -m bench.bench_api stop                          # the embedded PostgreSQL

`seed` fills a separate database (on --db / BENCH_DATABASE_URL, else an embedded PostgreSQL kept
running in --pgdata; `stop` stops it) through COPY: posts whose text is generated from a
Zipf-distributed vocabulary mixed with the real feed texts of ../shared/data/feeds, published over
eight years, with tags drawn from a regional distribution (Russia in a third of the posts,
Turkmenistan in 2 %), tag rows with scores, 300 sources, and every post in a story (a fourth of them
a second report of the story before). Indexes are built after the load, then
VACUUM ANALYZE and the monthly facet rollup.
`run` starts `aggregator serve` (aggregator.runtime.run_web) against it in its own process and, per
scenario, runs wrk (Debian: apt-get install wrk) for --warmup seconds unmeasured, then for
--duration seconds twice: latency (p50 / p99) with --latency-connections requests in flight (the
server busy, not saturated), then requests/s with --connections in flight (saturated).
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import platform
import random
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from tests.support.database import EmbeddedServer
from tests.support.shared import SHARED_DATA

PROJECT = Path(__file__).resolve().parent.parent
FEEDS = SHARED_DATA / "feeds"
START = datetime(2018, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=8 * 365)
COUNTRIES = {  # share of posts mentioning each country
    "RU": .33, "UA": .10, "KZ": .09, "AF": .09, "CN": .08, "US": .08, "UZ": .07, "TJ": .06, "KG": .06,
    "GE": .05, "AM": .05, "AZ": .05, "IR": .05, "PK": .04, "TR": .04, "BY": .03, "TM": .02, "IN": .02,
    "DE": .01, "FR": .01, "GB": .01, "MN": .01, "SY": .01, "MD": .01,
}
TOPICS = {
    "diplomacy": .22, "military": .20, "armed-conflict": .14, "terrorism": .10, "human-rights": .10,
    "elections-governance": .08, "border-security": .07, "crime-trafficking": .06, "unrest": .05,
    "corruption": .05, "migration": .05, "cyber": .04,
}
NAMES = {"RU": "Russia", "UA": "Ukraine", "KZ": "Kazakhstan", "AF": "Afghanistan", "CN": "China", "US": "Washington",
         "UZ": "Uzbekistan", "TJ": "Tajikistan", "KG": "Kyrgyzstan", "GE": "Georgia", "AM": "Armenia",
         "AZ": "Azerbaijan", "IR": "Iran", "PK": "Pakistan", "TR": "Turkey", "BY": "Belarus", "TM": "Turkmenistan"}
REGIONAL = [
    "security", "border", "guards", "troops", "militants", "ministry", "defence", "officials", "police",
    "president", "government", "talks", "sanctions", "attack", "drone", "strike", "protest", "court", "prison",
    "journalists", "opposition", "election", "pipeline", "gas", "oil", "migrants", "refugees", "smuggling",
    "narcotics", "corruption", "bribery", "cyberattack", "hackers", "exercises", "treaty", "alliance", "summit",
    "Kremlin", "Taliban", "Fergana", "Caspian", "Caucasus", "Dushanbe", "Astana", "Tashkent", "Bishkek",
    "Ashgabat", "Tbilisi", "Yerevan", "Baku", "Kabul", "Moscow", "Grozny", "Makhachkala",
]


def real_texts() -> list[tuple[str, str]]:
    """(title, text) of every entry of the shared real feeds, through our own parser."""
    from aggregator.ingest.parse import parse_and_normalize

    found = []
    for path in sorted(FEEDS.glob("*/*")):
        if path.suffix in {".xml", ".atom", ".rss"}:
            content = parse_and_normalize(path.read_bytes(), url=f"https://{path.stem}.example/feed",
                                          content_type=None, now=datetime.now(UTC))
            found.extend((p.title, p.text) for p in content.posts if p.text)
    return found


def vocabulary(texts: list[tuple[str, str]]) -> list[str]:
    words = re.findall(r"[A-Za-z][a-z]{2,}", " ".join(t for _, t in texts))
    counts: dict[str, int] = {}
    for w in words:
        counts[w.lower()] = counts.get(w.lower(), 0) + 1
    return [w for w, _ in sorted(counts.items(), key=lambda kv: -kv[1])][:20000]


def pick(rng: random.Random, shares: dict[str, float]) -> list[str]:
    chosen = [code for code, share in shares.items() if rng.random() < share]
    return chosen or [rng.choice(list(shares))]


def copy_text(value: object) -> str:
    if value is None:
        return r"\N"
    if isinstance(value, list):
        return "{" + ",".join(f'"{v}"' for v in value) + "}"
    return str(value).replace("\\", "\\\\").replace("\t", " ").replace("\n", "\\n").replace("\r", " ")


def generate(rows: int, seed: int = 7) -> Iterator[tuple[list[object], list[list[object]], int]]:
    """(post row, tag rows, source id) for each post, deterministic for a seed."""
    rng = random.Random(seed)
    texts = real_texts()
    words = vocabulary(texts) + REGIONAL * 20
    weights = [1 / (rank + 1) for rank in range(len(words))]
    cumulative = list(itertools.accumulate(weights))
    for i in range(1, rows + 1):
        countries, topics = pick(rng, COUNTRIES), pick(rng, TOPICS)
        primary = countries[:1] + [c for c in countries[1:] if rng.random() < .3]
        name = NAMES.get(countries[0], countries[0])
        body = " ".join(rng.choices(words, cum_weights=cumulative, k=rng.randint(60, 220)))
        if rng.random() < .3:
            title, real = rng.choice(texts)
            body = real[:3000] + " " + body
        else:
            title = f"{name}: {' '.join(rng.choices(words, cum_weights=cumulative, k=rng.randint(4, 9)))}"
        published = START + SPAN * (i / rows) + timedelta(minutes=rng.randint(-600, 600))
        text = f"{name} {body}."
        post = [i, f"bench-{i}", f"https://news{i % 300}.example/{i}", title[:300], None, published, None,
                f"<p>{text}</p>", text, text[:300], "en", f"h{i}", i % 300 + 1, countries, primary, topics,
                "bench"]
        tags = [[i, "country", c, "primary" if c in primary else "mentioned", round(rng.uniform(1, 9), 2), "[]",
                 "bench"] for c in countries]
        tags += [[i, "topic", t, None, round(rng.uniform(3, 9), 2), "[]", "bench"] for t in topics]
        yield post, tags, i % 300 + 1


POST_COLUMNS = ("id, dedup_key, url, title, author, published_at, updated_at, html, text, summary, lang, "
                "content_hash, source_id, countries, primary_countries, topics, taxonomy_version")


def seed(url: str, rows: int) -> None:
    from aggregator.db import facets as facets_db
    from aggregator.db import migrate as migrate_db
    from aggregator.db import recent_search as recent_search_db
    from aggregator.tagging import load_taxonomy

    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        migrate_db.migrate(conn)
        conn.execute("TRUNCATE fetch_log, post_sources, post_tags, posts, sources, stories RESTART IDENTITY CASCADE")
        conn.execute("UPDATE recent_search_floor SET floor = 'infinity'")  # filled once, after the load
        indexes = conn.execute("""SELECT indexname, indexdef FROM pg_indexes
                                  WHERE tablename IN ('posts', 'post_tags', 'post_sources')
                                    AND indexdef NOT LIKE '%UNIQUE%'""").fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        conn.execute("""INSERT INTO sources (url, name, poll_interval, next_poll_at, last_success_at)
                        SELECT 'https://news' || g || '.example/feed', 'News ' || g, 3600, now(), now()
                        FROM generate_series(1, 300) g""")
        batch_posts, batch_tags, batch_links = io.StringIO(), io.StringIO(), io.StringIO()
        for n, (post, tags, source_id) in enumerate(generate(rows), 1):
            batch_posts.write("\t".join(copy_text(v) for v in post) + "\n")
            for tag in tags:
                batch_tags.write("\t".join(copy_text(v) for v in tag) + "\n")
            batch_links.write(f"{post[0]}\t{source_id}\tbench-{post[0]}\n")
            if n % 20000 == 0 or n == rows:
                _copy(conn, batch_posts, batch_tags, batch_links)
                batch_posts, batch_tags, batch_links = io.StringIO(), io.StringIO(), io.StringIO()
                print(f"seed: {n} posts, {time.monotonic() - started:.0f}s", file=sys.stderr)
        conn.execute("SELECT setval('posts_id_seq', (SELECT max(id) FROM posts))")
        conn.execute("SET maintenance_work_mem = '512MB'")
        for name, definition in indexes:
            conn.execute(definition)
            print(f"seed: index {name}, {time.monotonic() - started:.0f}s", file=sys.stderr)
        recent_search_db.rebuild(conn)
        _stories(conn)
        print(f"seed: stories, {time.monotonic() - started:.0f}s", file=sys.stderr)
        conn.execute("VACUUM ANALYZE")
        # the taxonomy's regions first, as a web server writes them when it starts: otherwise its
        # first start finds them changed and every month is counted live until it has rebuilt them
        facets_db.sync_regions(conn, facets_db.region_definitions(load_taxonomy(None)))
        months = facets_db.refresh(conn, max_months=None)
        print(f"seed: facet rollup of {months} months, {time.monotonic() - started:.0f}s", file=sys.stderr)
        conn.execute("VACUUM ANALYZE facet_months")
    print(f"seed: done, {rows} posts in {time.monotonic() - started:.0f}s", file=sys.stderr)


def _stories(conn: psycopg.Connection) -> None:
    """Every post in a story, as ingest leaves them (a row of post_story_keys each), so pages pay for
    looking up a post's story and its "N sources": one post in four is a second outlet's report of
    the post before it. No features: pages never read them."""
    conn.execute("""INSERT INTO stories (id, title, origin_post_id, first_post_id, first_seen_at, last_seen_at,
                                         post_count, source_count)
                    SELECT id, title, id, id, sort_at, sort_at, 1, 1 FROM posts WHERE id % 4 <> 1 OR id = 1""")
    conn.execute("""INSERT INTO post_story_keys (post_id, story_id, at, story_seq, features, quiet)
                    SELECT id, CASE WHEN id % 4 = 1 AND id > 1 THEN id - 1 ELSE id END, sort_at, id, '{}', true
                    FROM posts""")
    conn.execute("UPDATE stories SET post_count = 2, source_count = 2 WHERE id % 4 = 0")
    conn.execute("SELECT setval('stories_id_seq', (SELECT max(id) FROM stories)), "
                 "setval('story_seq', (SELECT max(id) FROM posts))")


def _copy(conn: psycopg.Connection, posts: io.StringIO, tags: io.StringIO, links: io.StringIO) -> None:
    for table, columns, data in (("posts", POST_COLUMNS, posts),
                                 ("post_tags", "post_id, kind, code, role, score, evidence, taxonomy_version", tags),
                                 ("post_sources", "post_id, source_id, guid", links)):
        with conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            copy.write(data.getvalue())


# --- measuring -------------------------------------------------------------------------------

TARGETS = {"filter": 50.0, "search": 150.0}  # p99 ms
SCENARIOS = [  # name, kind, path (a {cursor20} placeholder is filled in before measuring)
    ("newest 50 posts", "filter", "/api/v1/posts?limit=50"),
    ("one country (KZ)", "filter", "/api/v1/posts?country=KZ"),
    ("one country (RU, a third of posts)", "filter", "/api/v1/posts?country=RU"),
    ("rare country (TM, primary)", "filter", "/api/v1/posts?country=TM&role=primary"),
    ("country + topic (KZ, terrorism)", "filter", "/api/v1/posts?country=KZ&topic=terrorism"),
    ("region + topic (central-asia, migration)", "filter", "/api/v1/posts?region=central-asia&topic=migration"),
    ("page 20 via cursor (newest)", "filter", "/api/v1/posts?limit=50&cursor={cursor20}"),
    ("page 20 via cursor (country KZ)", "filter", "/api/v1/posts?country=KZ&limit=50&cursor={cursor20kz}"),
    ("q, common word (security)", "search", "/api/v1/posts?q=security"),
    ("q, rare word", "search", "/api/v1/posts?q={rare}"),
    ("q, phrase and exclusion", "search", "/api/v1/posts?q=%22border%20guards%22%20-Russia"),
    ("q, rare word, relevance", "search", "/api/v1/posts?q={rare}&sort=relevance"),
    ("facets, one country (KZ)", "search", "/api/v1/facets?country=KZ"),
    ("facets, one country (RU, a third of posts)", "search", "/api/v1/facets?country=RU"),
    ("facets, country + topic (KZ, terrorism)", "search", "/api/v1/facets?country=KZ&topic=terrorism"),
]


def bench_database(args: argparse.Namespace, *, fresh: bool = False) -> str:
    """The benchmark database; `fresh` drops and recreates it (seeding always starts from nothing)."""
    url = args.db or os.environ.get("BENCH_DATABASE_URL")
    if url:
        return url
    base = EmbeddedServer(Path(args.pgdata), keep_running=True).url  # kept running: `stop` stops it
    with psycopg.connect(base, autocommit=True) as conn:
        if fresh:
            conn.execute("DROP DATABASE IF EXISTS aggregator_bench WITH (FORCE)")
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'aggregator_bench'").fetchone():
            conn.execute("CREATE DATABASE aggregator_bench")
        if conn.execute("SHOW shared_buffers").fetchone()[0] != "1GB":  # type: ignore[index]
            conn.execute("ALTER SYSTEM SET shared_buffers = '1GB'")
            print("bench: shared_buffers set to 1GB; restart the embedded server (pgserver) to apply",
                  file=sys.stderr)
    return psycopg.conninfo.make_conninfo(base, dbname="aggregator_bench")


def get_json(base: str, path: str) -> dict[str, object]:
    with urllib.request.urlopen(base + path, timeout=30) as response:
        return json.loads(response.read())


def cursor_of_page(base: str, path: str, page: int) -> str:
    cursor = ""
    for _ in range(page - 1):
        body = get_json(base, path + (f"&cursor={cursor}" if cursor else ""))
        cursor = str(body["next_cursor"])
    return cursor


def rare_word(url: str) -> str:
    """A word in a few dozen posts: a real rare term of the corpus, found from the search index."""
    with psycopg.connect(url) as conn:
        row = conn.execute("""SELECT word FROM ts_stat('SELECT search FROM posts WHERE id % 50 = 0')
                              WHERE ndoc BETWEEN 2 AND 3 AND length(word) > 6 AND word ~ '^[a-z]+$'
                              ORDER BY word LIMIT 1""").fetchone()
    return row[0] if row else "zirconium"


def parse_wrk(output: str) -> dict[str, float]:
    def ms(text: str) -> float:
        number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
        return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    assert p50 and p99 and rps, output
    return {"p50_ms": ms(p50.group(1)), "p99_ms": ms(p99.group(1)), "rps": float(rps.group(1)),
            "errors": float(bad.group(1)) if bad else 0.0}


def start_server(url: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": url, "AGGREGATOR_HTTP_PORT": str(port), "AGGREGATOR_LOG_LEVEL": "WARNING"}
    code = ("from aggregator.config import load_settings; from aggregator.logs import setup_logging; "
            "from aggregator.runtime import run_web; s = load_settings(); "
            "setup_logging(s.log_level, s.log_format); run_web(s)")
    process = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=PROJECT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).read()
            return process
        except OSError:
            if process.poll() is not None:
                raise SystemExit("bench: the server exited before it was ready") from None
            time.sleep(0.2)
    process.kill()
    raise SystemExit("bench: the server did not become ready in 60 s")


def measure(args: argparse.Namespace) -> list[dict[str, object]]:
    url = bench_database(args)
    base = f"http://127.0.0.1:{args.port}"
    server = start_server(url, args.port)
    try:
        fill = {"cursor20": cursor_of_page(base, "/api/v1/posts?limit=50", 20),
                "cursor20kz": cursor_of_page(base, "/api/v1/posts?country=KZ&limit=50", 20),
                "rare": urllib.parse.quote(rare_word(url))}
        results = []
        for name, kind, template in SCENARIOS:
            path = template.format(**fill)
            get_json(base, path)  # the first request also checks that the URL answers 200

            def wrk(seconds: int, connections: int, path: str = path) -> str:
                command = ["wrk", f"-t{min(args.threads, connections)}", f"-c{connections}", f"-d{seconds}s",
                           "--latency", base + path]
                return subprocess.run(command, check=True, capture_output=True, text=True).stdout

            wrk(args.warmup, args.connections)  # caches warm, as on a server answering for a while
            latency = parse_wrk(wrk(args.duration, args.latency_connections))
            throughput = parse_wrk(wrk(args.duration, args.connections))
            result = {"scenario": name, "path": path[:80], "target_p99_ms": TARGETS[kind],
                      "p50_ms": latency["p50_ms"], "p99_ms": latency["p99_ms"], "rps": throughput["rps"],
                      "p99_ms_saturated": throughput["p99_ms"], "errors": latency["errors"] + throughput["errors"]}
            results.append(result)
            print(f"{name:45} p50 {result['p50_ms']:7.1f} ms  p99 {result['p99_ms']:7.1f} ms  "
                  f"{result['rps']:7.0f} req/s  (p99 target {TARGETS[kind]:.0f} ms)", file=sys.stderr)
        return results
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["seed", "run", "stop"])
    parser.add_argument("--db", help="PostgreSQL URL of the benchmark database (default: embedded, --pgdata).")
    parser.add_argument("--pgdata", default="/tmp/aggregator-bench-api-pg", help="Embedded server's folder.")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--duration", type=int, default=8, help="Seconds of each measured run.")
    parser.add_argument("--warmup", type=int, default=3, help="Seconds of unmeasured load before each scenario.")
    parser.add_argument("--latency-connections", type=int, default=2,
                        help="Requests in flight while latency is measured (one per core: not saturated).")
    parser.add_argument("--connections", type=int, default=16, help="Requests in flight for requests/s (saturated).")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.command == "stop":
        EmbeddedServer(Path(args.pgdata)).close()  # the last handle: it stops
        return
    if args.command == "seed":
        seed(bench_database(args, fresh=True), args.rows)
        return
    load_before = os.getloadavg()[0]
    results = measure(args)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    machine = (f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
               f"load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} after")
    if args.json:
        print(json.dumps({"machine": machine, "date": datetime.now(UTC).isoformat(), "results": results}, indent=2))
    else:
        print(f"# {machine}, {datetime.now(UTC):%Y-%m-%d}")
        print(f"| scenario | p50 ms | p99 ms | p99 target ms | req/s ({args.connections} in flight) | p99 ms then |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in results:
            print(f"| {r['scenario']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['target_p99_ms']:.0f} | "
                  f"{r['rps']:.0f} | {r['p99_ms_saturated']:.0f} |")


if __name__ == "__main__":
    main()
