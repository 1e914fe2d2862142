"""Digest benchmark: 10,000 active subscriptions with varied filters over 50,000 recent posts; the
time to build every digest and hand it to a local SMTP server, and the peak memory doing it.

Run from the project root:

    python -m bench.bench_digest [--subscriptions 10000] [--posts 50000] [--db URL]

Without --db (or BENCH_DATABASE_URL) an embedded PostgreSQL is started in a temporary folder and
deleted afterwards. Phases, each its own process so the numbers are the digest run's alone:
  seed   posts (COPY: arrived over the last 20 hours, tags from a regional distribution, a tenth of
         them syndicated copies under another source's name and URL, a twentieth linked to two
         sources), and subscriptions (filters drawn like real ones: one country, country + topic,
         a region, a topic, words; zones and hours varied), all active and covering the last day;
  sink   aiosmtpd in its own process, counting what it accepts;
  run    `send_due(force=True)` (what `aggregator digest send-due --now` does) against the sink,
         timed, with its peak RSS and CPU time (getrusage of that process).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from tests.support.database import fresh_database, server_url
from tests.support.network import free_port
from tests.support.smtp import SmtpSink

PROJECT = Path(__file__).resolve().parent.parent

COUNTRIES = {"RU": .33, "UA": .10, "KZ": .09, "AF": .09, "CN": .08, "UZ": .07, "TJ": .06, "KG": .06, "GE": .05,
             "AM": .05, "AZ": .05, "IR": .05, "PK": .04, "TR": .04, "BY": .03, "TM": .02}
TOPICS = {"diplomacy": .22, "military": .20, "armed-conflict": .14, "terrorism": .10, "human-rights": .10,
          "elections-governance": .08, "border-security": .07, "crime-trafficking": .06, "unrest": .05,
          "corruption": .05, "migration": .05, "cyber": .04}
REGIONS = ["central-asia", "caucasus", "south-caucasus", "fergana-valley", "afpak", "post-soviet", "caspian"]
ZONES = ["UTC", "Europe/London", "Europe/Berlin", "Europe/Moscow", "Asia/Almaty", "Asia/Tashkent", "Asia/Kabul",
         "Asia/Tbilisi", "America/New_York", "America/Los_Angeles", "Asia/Tokyo", "Australia/Sydney"]
WORDS = ["drones", "border guards", "pipeline", "militants", "sanctions", "election", "protest", "smuggling",
         "cyberattack", "refugees", "troops", "treaty", "water", "Fergana", "Caspian", "Taliban"]


def pick(rng: random.Random, weights: dict[str, float], k: int) -> list[str]:
    chosen: list[str] = []
    while len(chosen) < k:
        code = rng.choices(list(weights), list(weights.values()))[0]
        if code not in chosen:
            chosen.append(code)
    return chosen


def seed(url: str, posts: int, subscriptions: int) -> dict[str, int]:
    from aggregator.digest.subscribe import canonical_filter, filter_key
    from aggregator.query import Vocabulary
    from aggregator.tagging import load_taxonomy

    rng = random.Random(6)
    now = datetime.now(UTC)
    vocabulary = Vocabulary.from_taxonomy(load_taxonomy())
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO sources (url, name, poll_interval) SELECT 'https://source' || i || '.example/feed',"
                     " 'Source ' || i, 3600 FROM generate_series(1, 200) AS i")
        with conn.cursor().copy("COPY posts (dedup_key, url, title, published_at, html, text, summary, content_hash,"
                                " source_id, first_seen_at, changed_at, countries, primary_countries, topics)"
                                " FROM STDIN") as copy:
            last_title = ""
            for i in range(posts):
                countries = pick(rng, COUNTRIES, rng.choice((1, 1, 2, 3)))
                topics = pick(rng, TOPICS, rng.choice((0, 1, 1, 2)))
                copy_of = i % 10 == 9 and last_title
                title = f"{last_title} - Source {i % 200 + 1}" if copy_of else \
                    f"{' '.join(rng.sample(WORDS, 3)).capitalize()} in {countries[0]} report {i}"
                last_title = title if not copy_of else last_title
                arrived = now - timedelta(hours=20 * rng.random())
                summary = " ".join(rng.choices(WORDS, k=40))
                copy.write_row((f"bench:{i}", f"https://source{i % 200 + 1}.example/{i}", title,
                                arrived - timedelta(minutes=rng.randint(0, 600)), f"<p>{summary}</p>", summary, summary,
                                uuid.uuid4().hex, i % 200 + 1, arrived, arrived, countries, countries[:1], topics))
        conn.execute("INSERT INTO post_sources (post_id, source_id, guid, first_seen_at) SELECT id, source_id, "
                     "dedup_key, first_seen_at FROM posts")
        conn.execute("INSERT INTO post_sources (post_id, source_id, guid, first_seen_at) SELECT id, "
                     "source_id % 200 + 1, dedup_key || '/b', first_seen_at FROM posts WHERE id % 20 = 0")
        with conn.cursor().copy("COPY subscriptions (email, filter, filter_key, timezone, send_hour, format, state,"
                                " watermark, confirm_sent_at, confirmed_at) FROM STDIN") as copy:
            for i in range(subscriptions):
                canonical, _ = canonical_filter(request(rng, i), vocabulary)
                copy.write_row((f"reader{i}@bench.example", json.dumps(canonical), filter_key(canonical),
                                rng.choice(ZONES), rng.randint(0, 23), "text" if i % 10 == 0 else "html", "active",
                                now - timedelta(days=1), now, now))
        conn.execute("ANALYZE")
        distinct = conn.execute("SELECT count(DISTINCT filter_key) FROM subscriptions").fetchone()
    return {"posts": posts, "subscriptions": subscriptions, "distinct_filters": int(distinct[0]) if distinct else 0}


def request(rng: random.Random, i: int) -> object:
    from aggregator.digest.subscribe import SubscriptionRequest

    kind = rng.random()
    if kind < .40:
        return SubscriptionRequest(email="x@bench.example", countries=pick(rng, COUNTRIES, rng.choice((1, 1, 2))))
    if kind < .70:
        return SubscriptionRequest(email="x@bench.example", countries=pick(rng, COUNTRIES, 1),
                                   topics=pick(rng, TOPICS, 1))
    if kind < .82:
        return SubscriptionRequest(email="x@bench.example", regions=[rng.choice(REGIONS)])
    if kind < .92:
        return SubscriptionRequest(email="x@bench.example", topics=pick(rng, TOPICS, rng.choice((1, 2))))
    if kind < .97:
        return SubscriptionRequest(email="x@bench.example", q=rng.choice(WORDS))
    return SubscriptionRequest(email="x@bench.example")


def sink(port: int) -> None:
    """The SMTP sink counting messages in its own process; prints the counts as JSON when stopped (SIGTERM)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # before the server thread starts: it inherits it
    server = SmtpSink(port, keep=False)
    server.start()
    print("ready", flush=True)
    signal.sigwait({signal.SIGTERM})
    server.stop()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"messages": server.messages, "bytes": server.bytes,
                      "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1)}), flush=True)


def run(url: str, port: int, data_dir: str) -> None:
    from aggregator.config import Settings
    from aggregator.db import Database
    from aggregator.digest.context import DigestContext
    from aggregator.digest.delivery import send_due

    settings = Settings(database_url=url, data_dir=Path(data_dir), smtp_host="127.0.0.1", smtp_port=port,
                        smtp_tls="none", public_url="https://digest.example.org", digest_secret="bench-secret",
                        mail_from="Digest <digest@example.org>")  # type: ignore[arg-type]
    with Database(url, max_size=4) as db:
        ctx = DigestContext.create(settings, db)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if os.environ.get("BENCH_PROFILE"):
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        report = send_due(ctx, now=datetime.now(UTC) + timedelta(minutes=30), force=True)
        if os.environ.get("BENCH_PROFILE"):
            profiler.disable()
            profiler.dump_stats(os.environ["BENCH_PROFILE"])
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": round(wall, 1), "cpu_seconds": round(cpu, 1), "peak_rss_mb": round(peak),
                      "sent": report.sent, "empty": report.empty, "failed": report.failed,
                      "claimed": report.claimed}), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("phase", nargs="?", default="all", choices=("all", "sink", "run"))
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--posts", type=int, default=50_000)
    parser.add_argument("--db", default=os.environ.get("BENCH_DATABASE_URL"))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--data-dir", default="")
    args = parser.parse_args()
    if args.phase == "sink":
        sink(args.port)
        return 0
    if args.phase == "run":
        run(args.db, args.port, args.data_dir)
        return 0
    with fresh_database(server_url(args.db, folder_prefix="bench-digest-pg-"), prefix="bench_digest") as url:
        started = time.perf_counter()
        seeded = seed(url, args.posts, args.subscriptions)
        print(f"seeded {seeded} in {time.perf_counter() - started:.0f} s", flush=True)
        port = free_port()
        me = [sys.executable, "-m", "bench.bench_digest"]
        server = subprocess.Popen([*me, "sink", "--port", str(port)], stdout=subprocess.PIPE, text=True)
        assert server.stdout and server.stdout.readline().strip() == "ready"
        with tempfile.TemporaryDirectory() as data_dir:
            result = subprocess.run([*me, "run", "--db", url, "--port", str(port), "--data-dir", data_dir],
                                    capture_output=True, text=True, check=True)
        server.send_signal(signal.SIGTERM)
        received = json.loads(server.communicate(timeout=30)[0].strip().splitlines()[-1])
        measured = json.loads(result.stdout.strip().splitlines()[-1])
        summary = {**seeded, **measured, "smtp_received": received["messages"],
                   "sink_cpu_seconds": received["cpu_seconds"],
                   "mb_sent": round(received["bytes"] / 2**20), "cores": os.cpu_count(),
                   "python": platform.python_version(),
                   "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}
        print(json.dumps(summary, indent=2))
        return 0 if measured["sent"] == received["messages"] else 1


if __name__ == "__main__":
    sys.exit(main())
