"""Cold ingest benchmark: our pipeline against the `reader` library on the same feeds served on loopback.

Run from the project root (see bench/README.md):

    python -m bench.bench_ingest [--copies 10] [--feeds-dir DIR] [--skip-reader] [--runs 3] [--no-stories] [--json]
    python -m bench.bench_ingest --skip-reader --skip-options --runs 6 --stories-drop   # what clustering costs

(--stories-drop times each pass once the parse processes have started and loaded the taxonomy: what
clustering costs a running service. The plain cold pass includes their start, as a first poll does.)

What it does, in order:
1. Serves every feed file of DIR (default ../shared/data/feeds) under COPIES URLs on 127.0.0.1 from a
   separate process (bench/served.py), each copy with its entry ids and links made unique (bench/feedcopies.py),
   with ETag / Last-Modified and 304 answers.
2. Times what feedparser's options cost on one core (the original files, no network, no database).
3. For each run: a fresh database (created on TEST_DATABASE_URL / DATABASE_URL's server, else on an embedded
   PostgreSQL in a temporary folder), every URL added as a source, then Worker.poll_now over all of them with a
   Runtime of Settings(allow_private_networks=True, parse_processes=0, fetch_concurrency=16): the cold pass
   (fetch -> parse -> normalize -> store), the posts counted in the database, then the same poll again, unchanged
   (answered 304). Peak memory and CPU per process are sampled every 50 ms from outside (bench/procwatch.py).
4. The reference: `reader` (feedparser + SQLite) on the same URLs in its own process (bench/reader_ingest.py).
5. A table (or --json); medians when --runs > 1. --profile FILE adds a single-threaded, in-process pass under
   cProfile and prints where the time goes, stage by stage.

Bounded in time (--timeout), it stops its server and helper processes, drops its database and deletes its
temporary folder by itself, whatever happens.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench.feedcopies import feed_files, make_copy, served_path
from tests.support.database import EmbeddedServer, fresh_database
from tests.support.shared import SHARED_DATA

BENCH = Path(__file__).resolve().parent
PROJECT = BENCH.parent
DEFAULT_FEEDS_DIR = SHARED_DATA / "feeds"
LOOPBACK = "127.0.0.1"

TARGET_RATIO = 4.0
TARGET_SECOND_PASS_SECONDS = 2.0
TARGET_PEAK_MB = 400.0
TARGET_STORIES_DROP = 0.15  # clustering may cost cold ingest at most this share of its throughput


class BenchTimeout(Exception):
    pass


# --- helper processes ----------------------------------------------------------------------------------


def _read_line(proc: subprocess.Popen[str], timeout: float, what: str) -> str:
    import selectors

    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise RuntimeError(f"{what} said nothing within {timeout:.0f} s")
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"{what} exited (status {proc.poll()})")
    return line


def _stop(proc: subprocess.Popen[str]) -> None:
    """Close its stdin (its signal to leave), then terminate, then kill: only this process, by its handle."""
    if proc.poll() is None:
        try:
            if proc.stdin:
                proc.stdin.close()
            proc.wait(3)
        except (subprocess.TimeoutExpired, OSError):
            proc.terminate()
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(3)


class FeedServer:
    """bench/served.py in its own process, on 127.0.0.1."""

    def __init__(self, feeds_dir: Path, copies: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.served", "--feeds-dir", str(feeds_dir), "--copies", str(copies)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        ready = json.loads(_read_line(self.proc, 120, "the feed server"))
        self.port: int = ready["port"]
        self.urls = [f"http://{LOOPBACK}:{self.port}{path}" for path in ready["paths"]]

    def stats(self) -> Counter[str]:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{self.port}/__stats", timeout=10) as response:
            return Counter(json.loads(response.read()))

    def close(self) -> None:
        _stop(self.proc)


class ProcWatch:
    """bench/procwatch.py watching this process and its children (not the feed server, not PostgreSQL)."""

    def __init__(self, interval: float, exclude: list[int], also: dict[str, int]) -> None:
        command = [sys.executable, "-m", "bench.procwatch", "--root", str(os.getpid()), "--interval", str(interval)]
        for pid in exclude:
            command += ["--exclude", str(pid)]
        for role, pid in also.items():
            command += ["--also", f"{role}={pid}"]
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def mark(self) -> dict[str, Any]:
        """What happened since the previous mark (peak RSS, CPU per process); starts the next phase."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("mark\n")
        self.proc.stdin.flush()
        return json.loads(_read_line(self.proc, 30, "the process watcher"))

    def close(self) -> None:
        _stop(self.proc)


# --- PostgreSQL ----------------------------------------------------------------------------------------


@contextmanager
def postgres_server(tmp: Path) -> Iterator[tuple[str, int | None, str]]:
    """(server URL, postmaster pid if ours, where): the configured server, else an embedded one in `tmp`."""
    configured = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if configured:
        yield configured, None, "TEST_DATABASE_URL" if os.environ.get("TEST_DATABASE_URL") else "DATABASE_URL"
        return
    server = EmbeddedServer(tmp / "pgdata")
    try:
        yield server.url, server.pid, "embedded (pgserver, temporary folder)"
    finally:
        server.close()  # stops it; the folder goes with `tmp`


def server_version(server_url: str) -> str:
    with psycopg.connect(server_url, autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


# --- the expected result, and what feedparser's options cost --------------------------------------------


def copy_zero_bodies(feeds_dir: Path, port: int) -> list[tuple[str, bytes]]:
    """(served URL, body) of copy 0 of every file: the same bytes the pipeline gets, one per file."""
    return [
        (f"http://{LOOPBACK}:{port}{served_path(0, f.name)}", make_copy(f.path.read_bytes(), 0))
        for f in feed_files(feeds_dir)
    ]


def expected_counts(bodies: list[tuple[str, bytes]], copies: int) -> dict[str, int]:
    """Entries in the served feeds, and the posts our parser makes of them (repeated ids collapse within a
    feed: CNN repeats 14 of its 86, BBC one); every copy has the same counts."""
    import feedparser

    from aggregator.ingest.parse import parse_and_normalize

    now = datetime.now(UTC)
    entries = posts = 0
    for url, body in bodies:
        entries += len(feedparser.parse(body, sanitize_html=False, resolve_relative_uris=False).entries)
        posts += len(parse_and_normalize(body, url=url, content_type="application/xml", now=now).posts)
    return {"entries": entries * copies, "posts": posts * copies}


def parser_options_table(bodies: list[tuple[str, bytes]], rounds: int = 3) -> list[dict[str, Any]]:
    """Entries/s on one core over the 21 original files: feedparser's defaults (what reader runs), our
    feedparser options, and our whole parse + normalize. Best of `rounds`."""
    import feedparser

    from aggregator.ingest.parse import FEEDPARSER_OPTIONS, parse_and_normalize

    now = datetime.now(UTC)

    def headers(url: str) -> dict[str, str]:
        return {"content-location": url, "content-type": "application/xml"}

    cases: list[tuple[str, Callable[[str, bytes], object]]] = [
        (
            "feedparser defaults (sanitize_html + resolve_relative_uris: reader)",
            lambda u, b: feedparser.parse(b, response_headers=headers(u)),
        ),
        (
            "feedparser sanitize_html=False",
            lambda u, b: feedparser.parse(b, response_headers=headers(u), sanitize_html=False),
        ),
        (
            "feedparser with our options " + ", ".join(f"{k}={v}" for k, v in FEEDPARSER_OPTIONS.items()),
            lambda u, b: feedparser.parse(b, response_headers=headers(u), **FEEDPARSER_OPTIONS),
        ),
        (
            "ours: parse_and_normalize (those options + nh3 sanitize + text)",
            lambda u, b: parse_and_normalize(b, url=u, content_type="application/xml", now=now),
        ),
    ]
    entries = sum(len(feedparser.parse(b, sanitize_html=False, resolve_relative_uris=False).entries) for _, b in bodies)
    rows = []
    for name, parse in cases:
        best = float("inf")
        for _ in range(rounds):
            started = time.perf_counter()
            for url, body in bodies:
                parse(url, body)
            best = min(best, time.perf_counter() - started)
        rows.append({"case": name, "seconds": best, "entries": entries, "entries_per_second": entries / best})
    return rows


# --- our pipeline ----------------------------------------------------------------------------------------


def bench_settings(database_url: str, tmp: Path, args: argparse.Namespace, **overrides: Any) -> Any:
    from aggregator.config import Settings

    values: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": tmp / "var",
        "feeds_file": tmp / "no-feeds.yaml",
        "sync_feeds_file": False,
        "allow_private_networks": True,
        "parse_processes": args.parse_processes,
        "fetch_concurrency": args.fetch_concurrency,
        "stories": not args.no_stories,
    }
    if args.per_host_concurrency:
        values["per_host_concurrency"] = args.per_host_concurrency
    return Settings(**(values | overrides))


def add_sources(db: Any, urls: list[str], poll_interval: int) -> None:
    from aggregator.db import sources as sources_db
    from aggregator.db.sources import SourceSpec

    with db.connection() as conn:
        for url in urls:
            sources_db.add(conn, SourceSpec(url), origin="cli", poll_interval=poll_interval)


def count_rows(db: Any) -> dict[str, int]:
    with db.connection() as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM posts), (SELECT count(*) FROM post_sources),"
            " (SELECT count(DISTINCT source_id) FROM post_sources)"
        ).fetchone()
    assert row is not None
    return {"posts": row[0], "post_links": row[1], "sources_with_posts": row[2]}


def warm_parse_processes(rt: Any, settings: Any, feeds_dir: Path) -> None:
    """Start every parse process and have each load the taxonomy (1.4-2 s of CPU apiece), outside
    the timed pass: a running service pays that once, so a per-post cost measured with it inside a
    10 s pass is diluted. As many copies of one feed as there are processes are parsed and tagged
    at once; nothing is stored. The pool starts a process for each one submitted while none is idle,
    so each process takes one, provided they have all started before the first has tagged its feed
    (1.4 s, whose taxonomy load makes it that long): true with two cores, not checked."""
    from concurrent.futures import ThreadPoolExecutor

    from aggregator.ingest.tag_stage import TagContext

    body = max((f.path for f in feed_files(feeds_dir)), key=lambda p: p.stat().st_size).read_bytes()
    ctx = TagContext(str(settings.taxonomy_dir) if settings.taxonomy_dir else None, story_features=settings.stories)
    processes = settings.parse_processes or os.cpu_count() or 1
    now = datetime.now(UTC)
    with ThreadPoolExecutor(processes) as threads:
        list(threads.map(lambda n: rt.parse(body, f"http://{LOOPBACK}/warm/{n}", None, now, ctx), range(processes)))


def run_ours(
    urls: list[str], server_url: str, tmp: Path, args: argparse.Namespace, server: FeedServer, watch: ProcWatch
) -> dict[str, Any]:
    from aggregator.ingest.worker import Worker
    from aggregator.runtime import Ingest

    with fresh_database(server_url, prefix="bench_ingest") as database_url:
        settings = bench_settings(database_url, tmp, args)
        started = time.perf_counter()
        with Ingest(settings) as rt:
            add_sources(rt.db, urls, settings.default_interval)
            worker = Worker(rt.db, rt.pipeline, settings)
            if getattr(args, "warm", False):
                warm_parse_processes(rt, settings, args.feeds_dir)
            setup_seconds = time.perf_counter() - started
            try:
                served_before = server.stats()
                watch.mark()
                started = time.perf_counter()
                cold = worker.poll_now(urls)
                cold_seconds = time.perf_counter() - started
                cold_watch = watch.mark()
                rows = count_rows(rt.db)
                served_cold = server.stats() - served_before
                started = time.perf_counter()
                second = worker.poll_now(urls)
                second_seconds = time.perf_counter() - started
                second_watch = watch.mark()
                served_second = server.stats() - served_before - served_cold
            finally:
                worker.shutdown()
            window_loads = rt.pipeline.stories.loads if rt.pipeline.stories is not None else None
    return {
        "settings": {
            k: getattr(settings, k)
            for k in ("parse_processes", "fetch_concurrency", "per_host_concurrency", "allow_private_networks")
        },
        "parse_processes_effective": settings.parse_processes or os.cpu_count() or 1,
        "setup_seconds": setup_seconds,
        "cold_seconds": cold_seconds,
        "cold_outcomes": dict(Counter(o.outcome for o in cold)),
        "cold_errors": [o.describe() for o in cold if o.outcome != "ok"][:20],
        "entries_parsed": sum(o.entries for o in cold),
        "new_posts_reported": sum(o.new_posts for o in cold),
        **rows,
        "served_cold": dict(served_cold),
        "second_seconds": second_seconds,
        "story_window_loads": window_loads,  # 1 when every turn found the window current
        "second_outcomes": dict(Counter(o.outcome for o in second)),
        "served_second": dict(served_second),
        "cold_watch": cold_watch,
        "second_watch": second_watch,
    }


# --- the reference: reader -------------------------------------------------------------------------------


def reader_env() -> dict[str, str]:
    """reader's vendored feedparser imports `sgmllib` (sgmllib3k), which this environment lacks; reader's
    documented switch READER_NO_VENDORED_FEEDPARSER=1 makes it use the installed feedparser instead — the one
    our pipeline uses, so both sides parse with the same feedparser."""
    env = dict(os.environ)
    probe = subprocess.run(
        [sys.executable, "-c", "import reader._vendor.feedparser"], capture_output=True, timeout=60, check=False
    )
    if probe.returncode != 0:
        env["READER_NO_VENDORED_FEEDPARSER"] = "1"
    return env


def run_reader(urls: list[str], tmp: Path, workers: int, timeout: float, watch: ProcWatch) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="reader-", dir=tmp))
    urls_file = folder / "urls.txt"
    urls_file.write_text("\n".join(urls) + "\n")
    env = reader_env()
    watch.mark()
    done = subprocess.run(
        [
            sys.executable,
            "-m", "bench.reader_ingest",
            "--urls-file",
            str(urls_file),
            "--db",
            str(folder / "reader.sqlite"),
            "--workers",
            str(workers),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    reader_watch = watch.mark()
    shutil.rmtree(folder, ignore_errors=True)
    if done.returncode != 0:
        raise RuntimeError(f"the reader run failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["feedparser"] = (
        "installed (READER_NO_VENDORED_FEEDPARSER=1)"
        if "READER_NO_VENDORED_FEEDPARSER" in env
        else "reader's vendored copy"
    )
    result["watch"] = reader_watch
    return result


# --- profile: one thread, one process, under cProfile ----------------------------------------------------

STAGES = [  # (label, file suffix, function name): cumulative time of each, from the profile
    ("fetch (Fetcher.fetch: httpx, socket, gzip, sha256)", "aggregator/ingest/fetch.py", "fetch"),
    ("parse + normalize + tag (tag_stage.process_body)", "aggregator/ingest/tag_stage.py", "process_body"),
    ("  parse + normalize (parse_and_normalize)", "aggregator/ingest/parse.py", "parse_and_normalize"),
    ("    feedparser.parse", "feedparser/api.py", "parse"),
    ("    normalize (entry_to_post)", "aggregator/ingest/normalize.py", "entry_to_post"),
    ("      sanitize_html (nh3)", "aggregator/textclean.py", "sanitize_html"),
    ("      html_to_text", "aggregator/textclean.py", "html_to_text"),
    ("  tag (tag_stage.tag_posts)", "aggregator/ingest/tag_stage.py", "tag_posts"),
    ("store: posts (posts.upsert_for_source)", "aggregator/db/posts.py", "upsert_for_source"),
    ("store: tags (pipeline.store_tags)", "aggregator/ingest/pipeline.py", "store_tags"),
    ("store: source record (sources.record_poll)", "aggregator/db/sources.py", "record_poll"),
    ("store: fetch_log.add", "aggregator/db/fetch_log.py", "add"),
    ("store: commit (psycopg Connection.commit)", "psycopg/connection.py", "commit"),
]


def run_profile(urls: list[str], server_url: str, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Every feed through Pipeline.update in this thread, parse inline: cProfile sees the whole path."""
    from aggregator.db import sources as sources_db
    from aggregator.runtime import Ingest

    profiler = cProfile.Profile()
    with fresh_database(server_url, prefix="bench_ingest") as database_url:
        settings = bench_settings(database_url, tmp, args, parse_processes=1, fetch_concurrency=1)
        with Ingest(settings) as rt:
            add_sources(rt.db, urls, settings.default_interval)
            with rt.db.connection() as conn:
                claimed = sources_db.claim_due(conn, owner="profile", limit=len(urls), lease_seconds=3600, urls=urls)
            started = time.perf_counter()
            profiler.enable()
            outcomes = [rt.pipeline.update(source, "profile") for source in claimed]
            profiler.disable()
            seconds = time.perf_counter() - started
            rows = count_rows(rt.db)
    profiler.dump_stats(args.profile)
    stats = pstats.Stats(profiler)
    table = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, tt, _, _) in table.values())
    stages = []
    for label, suffix, func in STAGES:
        found = [ct for (file, _, name), (_, _, _, ct, _) in table.items() if name == func and file.endswith(suffix)]
        if not found:  # a stage this version of the pipeline does not have
            continue
        cumulative = sum(found)
        stages.append({"stage": label, "seconds": cumulative, "share": cumulative / seconds if seconds else 0})
    top = sorted(table.items(), key=lambda item: item[1][2], reverse=True)[:25]
    return {
        "seconds": seconds,
        "profiled_seconds": total,
        "feeds": len(outcomes),
        "ok": sum(o.outcome == "ok" for o in outcomes),
        "posts": rows["posts"],
        "posts_per_second": rows["posts"] / seconds,
        "stages": stages,
        "top_tottime": [
            {"function": f"{Path(file).name}:{line}({name})", "calls": nc, "tottime": tt, "cumtime": ct}
            for (file, line, name), (_, nc, tt, ct, _) in top
        ],
        "file": str(args.profile),
    }


# --- the whole benchmark --------------------------------------------------------------------------------


def code_version() -> str:
    """The commit measured, and whether aggregator/ had uncommitted changes (read-only git commands)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(PROJECT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(PROJECT), "status", "--porcelain", "--", "aggregator"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + (" + uncommitted changes in aggregator/" if dirty else "")


def machine() -> dict[str, Any]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import psutil

    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def others_share(watch: dict[str, Any]) -> float:
    """The share of the machine's CPU capacity taken, during a phase, by processes that are not the benchmark's."""
    ours = sum(seconds for role, seconds in watch["cpu_seconds"].items())
    capacity = watch["seconds"] * (os.cpu_count() or 1)
    return max(0.0, watch["machine_busy_cpu_seconds"] - ours) / capacity if capacity else 0.0


def summarize_run(ours: dict[str, Any], reader: dict[str, Any] | None, expected: dict[str, int]) -> dict[str, Any]:
    cold_cpu = {role: s for role, s in ours["cold_watch"]["cpu_seconds"].items() if role != "watcher"}
    pipeline_cpu = pipeline_cpu_seconds(ours)
    cores = os.cpu_count() or 1
    parse_workers = [p for p in ours["cold_watch"]["processes"] if p["role"] == "child"]
    summary: dict[str, Any] = {
        "ours_seconds": ours["cold_seconds"],
        "ours_posts": ours["posts"],
        "ours_entries_per_second": ours["posts"] / ours["cold_seconds"],
        "ours_served_entries_per_second": expected["entries"] / ours["cold_seconds"],
        "posts_as_expected": ours["posts"] == expected["posts"],
        "second_pass_seconds": ours["second_seconds"],
        "second_pass_304": ours["served_second"].get("304", 0),
        "peak_rss_mb": ours["cold_watch"]["peak_rss_mb"],
        "peak_rss_second_pass_mb": ours["second_watch"]["peak_rss_mb"],
        "peak_pss_mb": ours["cold_watch"]["peak_pss_mb"],
        "peak_pss_by_role_mb": ours["cold_watch"]["peak_pss_by_role_mb"],
        "cpu_seconds": cold_cpu,
        "parse_worker_busy": [p["cpu_seconds"] / ours["cold_seconds"] for p in parse_workers],
        "cpu_utilization_of_all_cores": sum(cold_cpu.values()) / (ours["cold_seconds"] * (os.cpu_count() or 1)),
        "others_cpu_share": others_share(ours["cold_watch"]),
        # CPU cost, which other people's load on a shared machine disturbs far less than wall time
        "ours_cpu_ms_per_post": pipeline_cpu * 1000 / max(ours["posts"], 1),
        # throughput if that CPU were spread perfectly over every core and nothing else ran
        "ours_cpu_bound_entries_per_second": ours["posts"] / (pipeline_cpu / cores) if pipeline_cpu else 0.0,
    }
    if reader:
        summary |= {
            "reader_seconds": reader["cold_seconds"],
            "reader_entries": reader["entries"],
            "reader_entries_per_second": reader["entries"] / reader["cold_seconds"],
            "reader_second_pass_seconds": reader["second_seconds"],
            "reader_peak_rss_mb": reader["watch"]["peak_rss_mb"],
            "reader_peak_pss_mb": reader["watch"]["peak_pss_mb"],
            "reader_others_cpu_share": others_share(reader["watch"]),
            "reader_cpu_ms_per_post": _reader_cpu(reader) * 1000 / max(reader["entries"], 1),
            # reader parses in threads of one process: one core at most
            "reader_cpu_bound_entries_per_second": reader["entries"] / max(_reader_cpu(reader), 1e-9),
            "ratio": (ours["posts"] / ours["cold_seconds"]) / (reader["entries"] / reader["cold_seconds"]),
        }
    return summary


def _reader_cpu(reader: dict[str, Any]) -> float:
    """CPU of the reader process over its whole run (cold and second pass; the second costs ~0.1 s)."""
    return sum(s for role, s in reader["watch"]["cpu_seconds"].items() if role in ("main", "child"))


def median_of(runs: list[dict[str, Any]], key: str) -> Any:
    values = [r[key] for r in runs if key in r]
    return statistics.median(values) if values else None


def run_benchmark(args: argparse.Namespace, stack: ExitStack) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    stack.callback(shutil.rmtree, tmp, ignore_errors=True)
    server = FeedServer(args.feeds_dir, args.copies)
    stack.callback(server.close)
    urls = server.urls
    assert all(u.startswith(f"http://{LOOPBACK}:") for u in urls), "this benchmark fetches from 127.0.0.1 only"
    server_url, postmaster, where = stack.enter_context(postgres_server(tmp))
    also = {"feed_server": server.proc.pid} | ({"postgres": postmaster} if postmaster else {})
    watch = ProcWatch(args.sample_interval, exclude=[server.proc.pid], also=also)
    stack.callback(watch.close)

    bodies = copy_zero_bodies(args.feeds_dir, server.port)
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "code": code_version(),
        "machine": machine() | {"postgresql": server_version(server_url), "postgresql_where": where},
        "feeds": len(urls),
        "files": len(bodies),
        "copies": args.copies,
        "expected": expected_counts(bodies, args.copies),
        "served_megabytes": sum(len(b) for _, b in bodies) * args.copies / 1e6,
        "runs": [],
    }
    if not args.skip_options:
        report["parser_options"] = parser_options_table(bodies)
    del bodies
    for number in range(args.runs):
        if args.stories_drop:
            report.setdefault("stories_drop", []).append(
                paired_drop(urls, server_url, tmp, args, server, watch, first_with=number % 2 == 0))
            print(f"run {number + 1}/{args.runs}: " + drop_line(report["stories_drop"][-1]), file=sys.stderr,
                  flush=True)
            continue
        ours = run_ours(urls, server_url, tmp, args, server, watch)
        reader = None if args.skip_reader else run_reader(urls, tmp, args.reader_workers, args.timeout, watch)
        run = {"ours": ours, "reader": reader, "summary": summarize_run(ours, reader, report["expected"])}
        report["runs"].append(run)
        if not args.json:
            print(f"run {number + 1}/{args.runs}: " + one_line(run["summary"]), file=sys.stderr, flush=True)
    if args.stories_drop:
        return report
    summaries = [r["summary"] for r in report["runs"]]
    report["median"] = {
        key: median_of(summaries, key)
        for key in summaries[0]
        if isinstance(summaries[0][key], int | float) and not isinstance(summaries[0][key], bool)
    }
    if args.profile:
        report["profile"] = run_profile(urls, server_url, tmp, args)
    return report


def paired_drop(urls: list[str], server_url: str, tmp: Path, args: argparse.Namespace, server: Any, watch: Any,
                *, first_with: bool) -> dict[str, float]:
    """One cold pass with clustering and one without, back to back (which goes first alternates
    between runs): the machine's drift, which moves whole runs by more than clustering costs, falls
    on both halves of a pair alike. The parse processes are started and have loaded the taxonomy
    before each pass is timed: what clustering costs a running service, whose start-up (a fixed
    ~3 s of CPU, a fifth of a pass) would otherwise dilute the drop."""
    rates: dict[bool, float] = {}
    cpu: dict[bool, float] = {}
    for stories in ((True, False) if first_with else (False, True)):
        ours = run_ours(urls, server_url, tmp,
                        argparse.Namespace(**(vars(args) | {"no_stories": not stories, "warm": True})), server, watch)
        rates[stories] = ours["posts"] / ours["cold_seconds"]
        cpu[stories] = pipeline_cpu_seconds(ours) * 1000 / max(ours["posts"], 1)
    # The CPU a post costs every process of ours, PostgreSQL included: what bounds a pass that keeps
    # both cores busy. Meant to move less than wall time with what else the machine runs; on a
    # machine whose other tenants also slow a core's work, it moved as much (PERFORMANCE.md).
    return {"with": rates[True], "without": rates[False], "drop": 1 - rates[True] / rates[False],
            "cpu_with": cpu[True], "cpu_without": cpu[False], "cpu_drop": 1 - cpu[False] / cpu[True]}


def pipeline_cpu_seconds(ours: dict[str, Any]) -> float:
    """CPU seconds of a cold pass in every process of ours and PostgreSQL (not the feed server's)."""
    return sum(s for role, s in ours["cold_watch"]["cpu_seconds"].items() if role not in ("watcher", "feed_server"))


def drop_line(pair: dict[str, float]) -> str:
    return (f"{pair['with']:.0f} entries/s with clustering, {pair['without']:.0f} without: a drop of {pair['drop']:.1%}"
            f"; CPU a post {pair['cpu_with']:.2f} / {pair['cpu_without']:.2f} ms: {pair['cpu_drop']:.1%}")


def print_drops(report: dict[str, Any]) -> None:
    pairs = report["stories_drop"]
    drops = sorted(p["drop"] for p in pairs)
    print(f"Clustering's cost to cold ingest  {report['date']}  ({len(pairs)} pairs of runs)")
    print(f"code: {report['code']}")
    m = report["machine"]
    print(f"machine: {m['cpus']} CPUs, {m['cpu_model']}, Python {m['python']}, PostgreSQL {m['postgresql']}")
    for pair in pairs:
        print("  " + drop_line(pair))
    print(f"drop: median {statistics.median(drops):.1%}, range {drops[0]:.1%} to {drops[-1]:.1%} "
          f"(target: at most {TARGET_STORIES_DROP:.0%})")
    by_cpu = sorted(p["cpu_drop"] for p in pairs)
    print(f"drop by CPU a post: median {statistics.median(by_cpu):.1%}, range {by_cpu[0]:.1%} to {by_cpu[-1]:.1%}")


def one_line(s: dict[str, Any]) -> str:
    text = f"ours {s['ours_entries_per_second']:.0f} entries/s ({s['ours_seconds']:.2f} s)"
    if "reader_entries_per_second" in s:
        text += f", reader {s['reader_entries_per_second']:.0f} entries/s, ratio {s['ratio']:.2f}x"
    return text + f", unchanged pass {s['second_pass_seconds']:.2f} s, peak {s['peak_rss_mb']:.0f} MB"


def verdict(ok: bool) -> str:
    return "meets target" if ok else "MISSES target"


def print_report(report: dict[str, Any]) -> None:
    m, e = report["machine"], report["expected"]
    med = report["median"]
    runs = len(report["runs"])
    last = report["runs"][-1]
    print(f"Ingest benchmark  {report['date']}  ({'median of ' + str(runs) + ' runs' if runs > 1 else '1 run'})")
    print(f"code: {report['code']}")
    print(
        f"machine: {m['cpus']} CPUs, {m['cpu_model']}, {m['memory_gb']} GB, Python {m['python']}, "
        f"PostgreSQL {m['postgresql']} ({m['postgresql_where']})"
    )
    print(
        f"feed set: {report['files']} files x {report['copies']} copies = {report['feeds']} feeds on 127.0.0.1, "
        f"{report['served_megabytes']:.1f} MB, {e['entries']} entries -> {e['posts']} distinct posts expected"
    )
    print()
    print(f"{'':34s}{'ours':>14s}{'reader':>14s}   target")
    has_reader = med.get("reader_entries_per_second") is not None

    def cell(value: Any, fmt: str) -> str:
        return f"{value:{fmt}}" if value is not None else "-"

    rows = [
        ("cold ingest, seconds", med["ours_seconds"], med.get("reader_seconds"), ".2f", ""),
        (
            "posts stored",
            med["ours_posts"],
            med.get("reader_entries"),
            ".0f",
            "" if last["summary"]["posts_as_expected"] else "(ours != expected!)",
        ),
        (
            "entries/s (stored posts / s)",
            med["ours_entries_per_second"],
            med.get("reader_entries_per_second"),
            ".0f",
            "",
        ),
        (
            "unchanged second pass, seconds",
            med["second_pass_seconds"],
            med.get("reader_second_pass_seconds"),
            ".2f",
            f"< {TARGET_SECOND_PASS_SECONDS:.0f} s: {verdict(med['second_pass_seconds'] < TARGET_SECOND_PASS_SECONDS)}",
        ),
        ("CPU ms per post (all processes)", med["ours_cpu_ms_per_post"], med.get("reader_cpu_ms_per_post"), ".2f", ""),
        (
            "entries/s if CPU-bound, idle box",
            med["ours_cpu_bound_entries_per_second"],
            med.get("reader_cpu_bound_entries_per_second"),
            ".0f",
            f"{m['cpus']} cores for ours, 1 for reader (GIL)",
        ),
        # RSS counts a page shared by processes once in each (the fork server's preloaded language
        # model is in every parse process): the sum overstates the tree. PSS shares each page out.
        ("peak RSS summed, MB (cold pass)", med["peak_rss_mb"], med.get("reader_peak_rss_mb"), ".0f", ""),
        (
            "peak PSS, MB (cold pass)",
            med["peak_pss_mb"],
            med.get("reader_peak_pss_mb"),
            ".0f",
            f"< {TARGET_PEAK_MB:.0f} MB: {verdict(med['peak_pss_mb'] < TARGET_PEAK_MB)}",
        ),
    ]
    for label, ours, theirs, fmt, target in rows:
        print(f"{label:34s}{cell(ours, fmt):>14s}{cell(theirs, fmt):>14s}   {target}")
    if has_reader:
        ratio = med["ratio"]
        print(
            f"{'ratio ours / reader':34s}{ratio:>13.2f}x{'':14s}   >= {TARGET_RATIO:.0f}x: "
            f"{verdict(ratio >= TARGET_RATIO)}"
        )
        bound = med["ours_cpu_bound_entries_per_second"] / med["reader_cpu_bound_entries_per_second"]
        print(f"{'ratio if both were CPU-bound':34s}{bound:>13.2f}x{'':14s}   (from the CPU costs above)")
    ours = last["ours"]
    print()
    print(
        f"ours, last run: outcomes {ours['cold_outcomes']}, server answered {ours['served_cold']}; second pass "
        f"outcomes {ours['second_outcomes']}, server answered {ours['served_second']}"
    )
    for line in ours["cold_errors"][:5]:
        print(f"  not ok: {line}")
    s = last["summary"]
    cpu = s["cpu_seconds"]
    print(
        f"CPU seconds in the cold pass ({s['ours_seconds']:.2f} s wall, {m['cpus']} cores): "
        + ", ".join(f"{role} {sec:.2f}" for role, sec in sorted(cpu.items()))
        + f"; {s['cpu_utilization_of_all_cores']:.0%} of all cores"
    )
    others = f"other people's processes took {s['others_cpu_share']:.0%} of the machine during our cold pass"
    if "reader_others_cpu_share" in s:
        others += f", {s['reader_others_cpu_share']:.0%} during reader's run"
    print(
        others
        + (
            " (a shared machine: numbers are noisy)"
            if max(s["others_cpu_share"], s.get("reader_others_cpu_share", 0)) > 0.1
            else ""
        )
    )
    print(
        f"parse pool: {ours['parse_processes_effective']} processes, each busy "
        + ", ".join(f"{b:.0%}" for b in s["parse_worker_busy"])
        + " of the cold pass"
    )
    if last["reader"]:
        r = last["reader"]
        print(
            f"reader: {r['workers']} workers, feedparser: {r['feedparser']}, errors {len(r['cold_errors'])}, "
            f"second pass {r['second_not_modified']} not modified"
        )
    if "parser_options" in report:
        print()
        print("feedparser options, one core, the original files (no network, no database), best of 3:")
        for row in report["parser_options"]:
            print(f"  {row['entries_per_second']:8.0f} entries/s {row['seconds'] * 1000:8.0f} ms  {row['case']}")
    if "profile" in report:
        p = report["profile"]
        print()
        print(
            f"profile: one thread, parse inline, {p['feeds']} feeds, {p['posts']} posts in {p['seconds']:.2f} s "
            f"({p['posts_per_second']:.0f} posts/s under cProfile; stats in {p['file']})"
        )
        for stage in p["stages"]:
            print(f"  {stage['seconds']:7.2f} s {stage['share']:5.0%}  {stage['stage']}")
        print("  top functions by own time:")
        for row in p["top_tottime"][:15]:
            print(
                f"  {row['tottime']:7.2f} s own {row['cumtime']:7.2f} s cum {row['calls']:>9} calls  {row['function']}"
            )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--copies", type=int, default=10, help="URLs (copies) per feed file")
    parser.add_argument("--feeds-dir", type=Path, default=DEFAULT_FEEDS_DIR, help="the feed files, read at run time")
    parser.add_argument("--skip-reader", action="store_true", help="do not run the reader reference")
    parser.add_argument("--skip-options", action="store_true", help="do not time feedparser's options")
    parser.add_argument("--runs", type=int, default=1, help="repeat ours + reader, each with a fresh database")
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON")
    parser.add_argument("--save", type=Path, metavar="FILE", help="also write the whole report as JSON to FILE")
    parser.add_argument("--reader-workers", type=int, default=16, help="reader.update_feeds(workers=...)")
    parser.add_argument("--parse-processes", type=int, default=0, help="Settings.parse_processes (0: one per core)")
    parser.add_argument("--fetch-concurrency", type=int, default=16, help="Settings.fetch_concurrency")
    parser.add_argument("--no-stories", action="store_true",
                        help="ingest without story clustering (Settings.stories=False): what clustering costs")
    parser.add_argument("--stories-drop", action="store_true",
                        help="each run is a pair, with and without clustering back to back: report the drop")
    parser.add_argument(
        "--per-host-concurrency", type=int, default=0, help="Settings.per_host_concurrency (0: the setting's default)"
    )
    parser.add_argument("--sample-interval", type=float, default=0.05, help="memory/CPU sampling, seconds")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="also profile a single-threaded pass with cProfile; stats written to FILE",
    )
    parser.add_argument("--timeout", type=float, default=900, help="give up (and clean up) after this many seconds")
    args = parser.parse_args(argv)
    if not args.feeds_dir.is_dir():
        parser.error(f"no feeds folder at {args.feeds_dir}")
    if args.copies < 1 or args.runs < 1:
        parser.error("--copies and --runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def expire(signum: int, frame: object) -> None:
        raise BenchTimeout(f"the benchmark took longer than --timeout {args.timeout:.0f} s")

    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, args.timeout)
    signal.signal(signal.SIGTERM, lambda *_: expire(0, None))
    try:
        with ExitStack() as stack:
            report = run_benchmark(args, stack)
    except BenchTimeout as exc:
        print(f"bench_ingest: {exc}; stopped and cleaned up", file=sys.stderr)
        return 2
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    if args.save:
        args.save.write_text(json.dumps(report, indent=2, default=str) + "\n")
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    elif args.stories_drop:
        print_drops(report)
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
