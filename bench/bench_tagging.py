"""Tagging throughput on one core: posts per second over labeled articles, repeated.

    python -m bench.bench_tagging [FILE.jsonl ...] [--seconds N]

FILEs default to ../shared/data/tagging/dev-en.jsonl and dev-ru.jsonl: a mix of English and Russian
articles (about 1,000 to 2,000 characters each). The taxonomy is loaded (and compiled) once before timing,
as in a parse process; the figure is tag_post alone, and language detection is timed beside it. The
start also measures what a parse process pays once: the taxonomy's load time, and the memory the process
grows by when it loads the taxonomy and the language detector. CPU time is printed beside wall-clock time
because a busy machine makes the wall-clock figure understate one core.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import sys
import time
from collections import Counter
from pathlib import Path

import psutil

from aggregator.ingest import language
from aggregator.tagging import TagInput, load_taxonomy, tag_post
from tests.support.shared import SHARED_DATA

DATA = SHARED_DATA / "tagging"
DEFAULT_FILES = [DATA / "dev-en.jsonl", DATA / "dev-ru.jsonl"]


def _rss_mb() -> float:
    gc.collect()
    with contextlib.suppress(OSError):  # give freed heap back, as a long-running process eventually does
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return psutil.Process().memory_info().rss / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, default=DEFAULT_FILES)
    parser.add_argument("--seconds", type=float, default=5.0, help="minimum time to run")
    args = parser.parse_args()
    records = []
    for path in args.files:
        if not path.is_file():
            print(f"no such file: {path}", file=sys.stderr)
            return 2
        records += [r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines()) if r]
    posts = [TagInput(title=r.get("title", ""), text=r.get("text", "")) for r in records]
    languages = Counter(str(r.get("lang", "?")) for r in records)

    before = _rss_mb()
    started, cpu_started = time.perf_counter(), time.process_time()
    taxonomy = load_taxonomy()
    load_wall, load_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    after_taxonomy = _rss_mb()
    language.detect("", "Президент Казахстана провёл встречу с министрами." * 2)
    after_detector = _rss_mb()
    print(f"taxonomy {taxonomy.version} loaded in {load_wall:.2f}s wall, {load_cpu:.2f}s CPU")
    print(f"process growth: taxonomy {after_taxonomy - before:.1f} MB, language detector "
          f"{after_detector - after_taxonomy:.1f} MB, together {after_detector - before:.1f} MB")

    chars = sum(len(p.title) + len(p.text) for p in posts)
    done, started, cpu_started = 0, time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - started) < args.seconds:
        for post in posts:
            tag_post(post, taxonomy)
        done += len(posts)
    cpu = time.process_time() - cpu_started
    print(f"{done} posts ({dict(languages)} a round), mean {chars / len(posts):,.0f} characters a post, one thread")
    print(f"tagging   wall clock: {done / elapsed:,.0f} posts/s   CPU time of this process: {done / cpu:,.0f} posts/s")

    done, cpu_started = 0, time.process_time()
    while (cpu := time.process_time() - cpu_started) < args.seconds / 2:
        for post in posts:
            language.detect(post.title, post.text)
        done += len(posts)
    print(f"language detection   CPU time: {done / cpu:,.0f} posts/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
