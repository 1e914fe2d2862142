"""The reference run: the `reader` library (feedparser + SQLite) ingesting the same served feeds.

Run by bench_ingest.py in its own process, so its memory and imports stay apart from ours:

    python -m bench.reader_ingest --urls-file URLS --db DB.sqlite [--workers 16]

Prints one JSON line: the cold pass (seconds, entries stored, feeds that failed) and the second,
unchanged pass over every feed. `update_feeds(workers=N)` fetches *and parses* in N threads of one
process; reader has no address guard, so loopback URLs work as they are.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

from reader import make_reader


def run(urls: list[str], db: Path, workers: int) -> dict[str, object]:
    warnings.simplefilter("ignore")  # reader warns per skipped entry; the counts below say it
    reader = make_reader(str(db), search_enabled=False)
    try:
        for url in urls:
            reader.add_feed(url)
        started = time.perf_counter()
        cold = list(reader.update_feeds_iter(workers=workers))
        cold_seconds = time.perf_counter() - started
        entries = reader.get_entry_counts().total
        started = time.perf_counter()
        # scheduled=False: every feed again now, not only those due (reader schedules the next update in an hour)
        second = list(reader.update_feeds_iter(workers=workers, scheduled=False))
        second_seconds = time.perf_counter() - started
    finally:
        reader.close()
    return {
        "workers": workers,
        "feeds": len(urls),
        "cold_seconds": cold_seconds,
        "entries": entries,
        "cold_errors": _errors(cold),
        "second_seconds": second_seconds,
        "second_not_modified": sum(1 for _, value in second if value is None),
        "second_errors": _errors(second),
    }


def _errors(results: list[tuple[str, object]]) -> list[str]:
    return [f"{url}: {value!r}"[:300] for url, value in results if isinstance(value, Exception)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--urls-file", type=Path, required=True)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()
    urls = [line.strip() for line in args.urls_file.read_text().splitlines() if line.strip()]
    print(json.dumps(run(urls, args.db, args.workers)), flush=True)


if __name__ == "__main__":
    main()
