"""Entries per second of parse_and_normalize on one core, and what feedparser's options cost.

Run: python -m bench.bench_parse [feeds folder]   (default: ../shared/data/feeds)
Not a test: numbers depend on the machine. Each body is parsed `ROUNDS` times; the best round counts,
measured in CPU time because the machine may be shared.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import feedparser

from aggregator.ingest.normalize import canonical_url
from aggregator.ingest.parse import parse_and_normalize
from aggregator.textclean import html_to_text, sanitize_html
from tests.support.shared import SHARED_DATA

ROUNDS = 5
DEFAULT_FOLDER = SHARED_DATA / "feeds"
HEADERS = {"content-location": "https://example.com/feed", "content-type": "application/xml"}


def best_of(func: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.process_time()
        func()
        best = min(best, time.process_time() - started)
    return best


def run_all(bodies: list[bytes], one: Callable[[bytes], object]) -> float:
    return best_of(lambda: [one(body) for body in bodies])


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_FOLDER
    bodies = [p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix != ".md"]
    entries = sum(len(feedparser.parse(b).entries) for b in bodies)
    now = datetime.now(UTC)
    print(f"{len(bodies)} feeds, {entries} entries, {sum(map(len, bodies)) / 1e6:.1f} MB, best of {ROUNDS}")
    cases: dict[str, Callable[[bytes], object]] = {
        "feedparser defaults (sanitize + resolve URIs)": lambda b: feedparser.parse(b, response_headers=HEADERS),
        "feedparser sanitize_html=False": lambda b: feedparser.parse(b, response_headers=HEADERS, sanitize_html=False),
        "feedparser sanitize_html=False, resolve_relative_uris=False": lambda b: feedparser.parse(
            b, response_headers=HEADERS, sanitize_html=False, resolve_relative_uris=False
        ),
        "parse_and_normalize (feedparser fast options + nh3 + text)": lambda b: (
            canonical_url.cache_clear(),  # no help from earlier rounds
            parse_and_normalize(b, url="https://example.com/feed", now=now),
        ),
    }
    for name, one in cases.items():
        seconds = run_all(bodies, one)
        print(f"{entries / seconds:8.0f} entries/s  {seconds * 1000:7.1f} ms  {name}")
    bench_text(bodies)


def bench_text(bodies: list[bytes]) -> None:
    """HTML -> text alone, over every entry body, against the obvious alternatives."""
    from html.parser import HTMLParser

    parsed = [feedparser.parse(b, sanitize_html=False, resolve_relative_uris=False) for b in bodies]
    htmls = [(e.get("content") or [{"value": e.get("summary", "")}])[0]["value"] for p in parsed for e in p.entries]
    safe = [sanitize_html(h, "https://example.com/") for h in htmls]
    size = sum(map(len, htmls)) / 1e6

    class Collect(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.parts: list[str] = []

        def handle_data(self, data: str) -> None:
            self.parts.append(data)

    def stdlib(h: str) -> str:
        parser = Collect()
        parser.feed(h)
        parser.close()
        return "".join(parser.parts)

    cases: dict[str, Callable[[], object]] = {
        "nh3.clean (sanitize + absolutize)": lambda: [sanitize_html(h, "https://example.com/") for h in htmls],
        "html_to_text on nh3 output (regex)": lambda: [html_to_text(h) for h in safe],
        "stdlib html.parser text only": lambda: [stdlib(h) for h in safe],
    }
    try:
        from bs4 import BeautifulSoup

        cases["bs4 html.parser get_text"] = lambda: [BeautifulSoup(h, "html.parser").get_text("\n") for h in safe]
    except ImportError:
        pass
    print(f"\n{len(htmls)} entry bodies, {size:.1f} MB of HTML")
    for name, func in cases.items():
        seconds = best_of(func)
        print(f"{len(htmls) / seconds:8.0f} bodies/s  {size / seconds:6.1f} MB/s  {name}")


if __name__ == "__main__":
    main()
