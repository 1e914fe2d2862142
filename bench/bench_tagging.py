"""Tagging throughput on one core: posts per second over labeled articles, repeated.

    .venv/bin/python bench/bench_tagging.py [FILE.jsonl] [--seconds N]

FILE defaults to ../shared/data/tagging/dev.jsonl (about 2,000 characters an article). The taxonomy is
loaded (and compiled) once before timing, as in the worker; the figure is tag_post alone. CPU time is
printed beside wall-clock time because a busy machine makes the wall-clock figure understate one core.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aggregator.tagging import TagInput, load_taxonomy, tag_post  # noqa: E402

DEFAULT_FILE = ROOT.parent / "shared" / "data" / "tagging" / "dev.jsonl"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--seconds", type=float, default=5.0, help="minimum time to run")
    args = parser.parse_args()
    if not args.file.is_file():
        print(f"no such file: {args.file}", file=sys.stderr)
        return 2
    posts = [TagInput(title=r.get("title", ""), text=r.get("text", ""))
             for r in map(json.loads, args.file.read_text(encoding="utf-8").splitlines()) if r]
    started = time.perf_counter()
    taxonomy = load_taxonomy()
    print(f"taxonomy {taxonomy.version} loaded in {time.perf_counter() - started:.2f}s")
    chars = sum(len(p.title) + len(p.text) for p in posts)
    done, started, cpu_started = 0, time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - started) < args.seconds:
        for post in posts:
            tag_post(post, taxonomy)
        done += len(posts)
    cpu = time.process_time() - cpu_started
    print(f"{done} posts, mean {chars / len(posts):,.0f} characters a post, one thread")
    print(f"wall clock: {done / elapsed:,.0f} posts/s   CPU time of this process: {done / cpu:,.0f} posts/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
