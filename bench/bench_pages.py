"""Web reader benchmark: the pages and the trend JSON on bench_api's 1,000,000 seeded posts, under wrk.

Run from the project root (the database is bench_api's: seed it first, see bench/bench_api.py):

    python -m bench.bench_api seed [--rows 1000000]
    python -m bench.bench_pages [--connections 20] [--duration 8]

Each scenario runs wrk for --warmup seconds unmeasured, then --duration seconds with --connections
requests in flight: p50 / p99 latency and pages per second, with the default web process count,
and the CPU time each request cost the web processes and PostgreSQL (a figure other work on the
machine does not inflate the way it inflates latency), and the server's own figures from each
answer's Server-Timing header: `wait` for a request thread, `app` working on the page, `total` held.
At --connections clients that never pause, a process answers one request while the others queue,
so the client's latency is mostly `wait`: its mean is the clients over the pages per second.
Pages and trend data are kept per process until a post changes, so a repeated address is answered
from memory; `--cold` turns that cache off to measure what every rendering costs.
"First load" is what a browser transfers for `/` with gzip: the page and every asset it links.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from bench.bench_api import bench_database, parse_wrk, start_server
from bench.bench_stories import percentile

SCENARIOS = [  # (name, path, p99 target in ms, HX-Request: the fragment htmx loads into a page)
    ("stream /", "/", 100.0, False),
    ("stream, country + topic", "/?country=KZ&topic=terrorism", 100.0, False),
    ("  its filter counts (htmx)", "/filters?country=KZ&topic=terrorism", 100.0, True),
    ("stream, words", "/?q=border", 100.0, False),
    ("  its filter counts (htmx)", "/filters?q=border", 100.0, True),
    ("country page", "/countries/KZ", 100.0, False),
    ("post page", "/posts/{post}", 100.0, False),
    ("trend JSON, country, 90 days", "/api/v1/trends?country=KZ", 50.0, False),
]
FIRST_LOAD_TARGET_KB = 150.0
# wrk calls `response` for every answer; each thread keeps the Server-Timing values, printed at the end
SERVER_TIMING_SCRIPT = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) timings = {} end
function response(status, headers, body)
  local value = headers["server-timing"] or headers["Server-Timing"]
  if value then timings[#timings + 1] = value end
end
function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for _, value in ipairs(thread:get("timings")) do io.write("server-timing: ", value, "\\n") end
  end
end
"""


def server_timing(output: str) -> dict[str, float]:
    """p50 and p99 in ms of each Server-Timing figure the answers in wrk's output carried."""
    values: dict[str, list[float]] = {}
    for name, duration in re.findall(r"(\w+);dur=([\d.]+)", "\n".join(
            line for line in output.splitlines() if line.startswith("server-timing: "))):
        values.setdefault(name, []).append(float(duration))
    return {f"{name}_p{q}_ms": percentile(durations, q / 100) for name, durations in values.items() for q in (50, 99)}


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time these processes have used so far (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def with_children(pid: int) -> list[int]:
    """A process and its children: the web server's processes (one per core by default), or
    PostgreSQL's postmaster and its backends."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(stat.parent.name))
        except (OSError, ValueError):
            continue
    return [pid, *children]


def database_pids(pgdata: Path) -> list[int]:
    """The embedded PostgreSQL's processes: its postmaster and every child (the web pool's backends)."""
    try:
        postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    return with_children(postmaster)


def fetch(url: str, *, gzip_ok: bool = True) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"} if gzip_ok else {})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status, response.read()


def first_load(base: str) -> dict[str, object]:
    """Bytes a first visit to / transfers (compressed as served), the page and its linked assets."""
    _, page = fetch(base + "/")
    html = gzip.decompress(page).decode() if page[:2] == b"\x1f\x8b" else page.decode()
    assets = sorted(set(re.findall(r'(?:src|href)="(/static/[^"#]+)', html)))  # the map's outlines: one file
    sizes = {"/": len(page)}
    for asset in assets:
        sizes[asset] = len(fetch(base + asset)[1])
    return {"total_kb": round(sum(sizes.values()) / 1024, 1), "target_kb": FIRST_LOAD_TARGET_KB, "parts": sizes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", help="PostgreSQL URL of the benchmark database (default: bench_api's embedded one).")
    parser.add_argument("--pgdata", default="/tmp/aggregator-bench-api-pg")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cold", action="store_true",
                        help="No page cache (AGGREGATOR_FEEDS_CACHE_ENTRIES=0): every request renders.")
    args = parser.parse_args()
    url = bench_database(args)
    base = f"http://127.0.0.1:{args.port}"
    if args.cold:
        os.environ["AGGREGATOR_FEEDS_CACHE_ENTRIES"] = "0"
    server = start_server(url, args.port)
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)  # noqa: SIM115 (removed below)
    script.write(SERVER_TIMING_SCRIPT)
    script.close()
    try:
        post = json.loads(fetch(base + "/api/v1/posts?country=KZ&limit=1", gzip_ok=False)[1])["items"][0]["id"]
        results = []
        for name, template, target, htmx in SCENARIOS:
            path = template.format(post=post)
            status, _ = fetch(base + path)
            assert status == 200, (path, status)

            def wrk(seconds: int, path: str = path, htmx: bool = htmx, timed: bool = True) -> str:
                command = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s", "--latency",
                           *(["-s", script.name] if timed else []),
                           "-H", "Accept-Encoding: gzip", *(["-H", "HX-Request: true"] if htmx else []), base + path]
                return subprocess.run(command, check=True, capture_output=True, text=True).stdout

            wrk(args.warmup, timed=False)
            # CPU per request of the web process and of PostgreSQL: what wall-clock figures cannot
            # show on a machine that other work shares (the database's only when it is the local one)
            db_pids = [] if args.db else database_pids(Path(args.pgdata))
            web_pids = with_children(server.pid)
            before = cpu_seconds(web_pids), cpu_seconds(db_pids)
            output = wrk(args.duration)
            after = cpu_seconds(web_pids), cpu_seconds(db_pids)
            measured = parse_wrk(output)
            done = max(1, int(re.search(r"(\d+) requests in", output).group(1)))  # type: ignore[union-attr]
            web_ms, db_ms = (1000 * (a - b) / done for a, b in zip(after, before, strict=True))
            timing = server_timing(output)
            results.append({"scenario": name, "path": path, "p50_ms": measured["p50_ms"],
                            "p99_ms": measured["p99_ms"], "target_p99_ms": target, "per_second": measured["rps"],
                            "server_timing": timing,
                            "errors": measured["errors"], "web_cpu_ms": round(web_ms, 2),
                            "db_cpu_ms": round(db_ms, 2) if db_pids else None, "load": os.getloadavg()[0]})
            print(f"{name:32} p50 {measured['p50_ms']:7.1f} ms  p99 {measured['p99_ms']:7.1f} ms "
                  f"(target {target:.0f})  {measured['rps']:7.0f}/s  CPU per request: web {web_ms:5.2f} ms, "
                  f"database {db_ms:5.2f} ms  (load {os.getloadavg()[0]:.1f})", file=sys.stderr)
            print(f"{'':32} in the server p50 / p99: " + ", ".join(
                f"{k} {timing[f'{k}_p50_ms']:.1f} / {timing[f'{k}_p99_ms']:.1f} ms" for k in ("wait", "app", "total")
                if f"{k}_p50_ms" in timing), file=sys.stderr)
        loaded = first_load(base)
        print(f"first load of /: {loaded['total_kb']} KB compressed (target {FIRST_LOAD_TARGET_KB:.0f})",
              file=sys.stderr)
        print(json.dumps({"scenarios": results, "first_load": loaded, "connections": args.connections,
                          "cache": not args.cold}, indent=2))
    finally:
        os.unlink(script.name)
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
