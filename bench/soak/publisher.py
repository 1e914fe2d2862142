"""The soak's feed server: 300 feeds that publish new posts at random times, some of them flaky.

Run by run.py as its own process, so its CPU and memory are not the service's:

    python -m bench.soak.publisher --feeds 300 --rate 1.0 --seed 7

It binds 127.0.0.1 on a free port, prints one JSON line {"port": ...} when ready, and serves until
its standard input closes or it gets SIGTERM. Control routes:

    POST /__stop   stop publishing (the feeds keep serving what they hold)
    GET  /__truth  the ground truth: every article published, in which feeds, with its known tags;
                   and how many responses of each kind every feed sent

Feed kinds (fixed by feed number, so every run has the same mix):
- blogger: Atom shaped like Blogger's (tag:blogger.com ids, alternate links, ETag + Last-Modified);
- rss: RSS 2.0 with non-permalink guids;
- flaky: either shape, and each request may fail: a 500, a hang longer than the client waits,
  a body cut short of its Content-Length, a well-formed HTTP response whose XML is cut off, or a
  new ETag on unchanged content. Never more than MAX_FAILING_STREAK failing answers in a row: a
  flaky feed, not a dead one, so every article is readable within the run.
About one article in twelve is syndicated: published into a second feed under its own guid with
the same link, as aggregators and mirror blogs do; it must be stored once, linked to both feeds.

A feed holds its newest WINDOW entries; the publishing rate keeps every feed well below that
between two polls, so an article can only go missing if the service loses it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

from bench.soak.articles import ARTICLES

WINDOW = 25
HANG_SECONDS = 8.0
FAILING = frozenset({"500", "hang", "short-body", "cut-xml"})
MAX_FAILING_STREAK = 2  # a flaky feed answers well at least every third request


@dataclass
class Entry:
    guid: str
    url: str
    title: str
    body: str
    published: datetime
    article: int  # index into ARTICLES


@dataclass
class Feed:
    number: int
    kind: str  # blogger | rss | flaky-blogger | flaky-rss
    entries: list[Entry] = field(default_factory=list)
    version: int = 0
    modified: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))
    body: bytes = b""
    etag: str = ""
    served: Counter[str] = field(default_factory=Counter)
    failing_streak: int = 0

    @property
    def path(self) -> str:
        return f"/feeds/{self.number:03d}.xml"

    @property
    def shape(self) -> str:
        return "atom" if self.kind.endswith("blogger") else "rss"


def _kind(number: int) -> str:
    return ("blogger", "rss", "blogger", "rss", "flaky-blogger")[number % 5] if number % 10 != 9 else "flaky-rss"


def render(feed: Feed) -> bytes:
    entries = sorted(feed.entries, key=lambda e: e.published, reverse=True)[:WINDOW]
    if feed.shape == "atom":
        items = "".join(
            f"<entry><id>{e.guid}</id><published>{e.published.isoformat()}</published>"
            f"<updated>{e.published.isoformat()}</updated><title type='text'>{escape(e.title)}</title>"
            f"<content type='html'>{escape(e.body)}</content>"
            f"<link rel='alternate' type='text/html' href='{e.url}' title='{escape(e.title)}'/>"
            f"<author><name>Soak Author {feed.number}</name></author></entry>"
            for e in entries)
        return (f"<?xml version='1.0' encoding='UTF-8'?><feed xmlns='http://www.w3.org/2005/Atom'>"
                f"<id>tag:blogger.com,1999:blog-{900000 + feed.number}</id>"
                f"<updated>{feed.modified.isoformat()}</updated><title type='text'>Soak blog {feed.number}</title>"
                f"<link rel='alternate' type='text/html' href='https://soak-blog-{feed.number}.blogspot.com/'/>"
                f"{items}</feed>").encode()
    items = "".join(
        f"<item><title>{escape(e.title)}</title><link>{e.url}</link><guid isPermaLink='false'>{e.guid}</guid>"
        f"<pubDate>{format_datetime(e.published, usegmt=True)}</pubDate>"
        f"<description>{escape(e.body)}</description></item>"
        for e in entries)
    return (f"<?xml version='1.0' encoding='UTF-8'?><rss version='2.0'><channel><title>Soak news {feed.number}"
            f"</title><link>https://soak-news-{feed.number}.example/</link><description>Soak feed</description>"
            f"{items}</channel></rss>").encode()


class World:
    """The feeds and the truth about them; one lock, held briefly."""

    def __init__(self, feeds: int, seed: int) -> None:
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        self.feeds = {f.path: f for f in (Feed(n, _kind(n)) for n in range(feeds))}
        self.articles: list[dict[str, object]] = []
        self.publishing = True
        for feed in self.feeds.values():
            self._refresh(feed)

    def _refresh(self, feed: Feed) -> None:
        feed.version += 1
        feed.modified = datetime.now(UTC).replace(microsecond=0)
        feed.body = render(feed)
        feed.etag = '"' + hashlib.sha256(feed.body).hexdigest()[:24] + '"'

    def publish_one(self) -> None:
        with self.lock:
            if not self.publishing:
                return
            n = len(self.articles)
            feeds = list(self.feeds.values())
            first = self.rng.choice(feeds)
            targets = [first]
            if self.rng.random() < 1 / 12:
                targets.append(self.rng.choice([f for f in feeds if f is not first]))
            which = self.rng.randrange(len(ARTICLES))
            article = ARTICLES[which]
            title = article.title.format(n=n)
            url = f"https://soak-blog-{first.number}.blogspot.com/2026/11/story-{n}.html"
            now = datetime.now(UTC).replace(microsecond=0)
            guids = {}
            for feed in targets:
                guid = (f"tag:blogger.com,1999:blog-{900000 + feed.number}.post-{1000000 + n}"
                        if feed.shape == "atom" else f"soak-{feed.number}-{n}")
                feed.entries.append(Entry(guid, url, title, article.body, now, which))
                del feed.entries[:-WINDOW]
                self._refresh(feed)
                guids[feed.path] = guid
            self.articles.append({"n": n, "url": url, "title": title, "feeds": guids,
                                  "primary": article.primary, "topics": list(article.topics),
                                  "published": now.isoformat()})

    def truth(self) -> dict[str, object]:
        with self.lock:
            return {"articles": list(self.articles),
                    "feeds": {p: {"kind": f.kind, "served": dict(f.served), "version": f.version}
                              for p, f in self.feeds.items()}}


def publisher_loop(world: World, rate: float, stop: threading.Event) -> None:
    """Poisson arrivals at `rate` posts per second over all feeds."""
    rng = random.Random(world.rng.random())
    while not stop.wait(rng.expovariate(rate)):
        world.publish_one()
        if not world.publishing:
            return


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's listen backlog of 5 overflows when both workers open their connections at
    # once on a loaded machine: the kernel drops the SYNs, the client retries a second later, and
    # a healthy feed fails its connect timeout. A web server in front of 300 sites queues more.
    request_queue_size = 256

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients give up on hanging feeds and close connections: that is the test, not an error."""
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


def make_handler(world: World, stop: threading.Event) -> type[BaseHTTPRequestHandler]:
    fault_rng = random.Random(world.rng.random())
    rng_lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            if self.path == "/__stop":
                with world.lock:
                    world.publishing = False
                self._send(200, b"stopped")
            else:
                self._send(404, b"")

        def do_GET(self) -> None:
            if self.path == "/__truth":
                self._send(200, json.dumps(world.truth()).encode(), {"Content-Type": "application/json"})
                return
            feed = world.feeds.get(self.path)
            if feed is None:
                self._send(404, b"not found")
                return
            with world.lock:
                body, etag, modified = feed.body, feed.etag, feed.modified
            fault = "ok"
            if feed.kind.startswith("flaky"):
                with rng_lock:
                    roll = fault_rng.random()
                fault = ("500" if roll < 0.12 else "hang" if roll < 0.18 else "short-body" if roll < 0.26
                         else "cut-xml" if roll < 0.32 else "new-etag" if roll < 0.42 else "ok")
            with world.lock:
                if fault in FAILING and feed.failing_streak >= MAX_FAILING_STREAK:
                    fault = "ok"  # flaky, not dead: the service must get through within the run
                feed.failing_streak = feed.failing_streak + 1 if fault in FAILING else 0
                feed.served[fault] += 1
            if fault == "500":
                self._send(500, b"internal error", {"Content-Type": "text/plain"})
                return
            if fault == "hang":  # longer than the client's deadline; give up early on shutdown
                stop.wait(HANG_SECONDS)
                self.close_connection = True
                return
            ctype = "application/atom+xml" if feed.shape == "atom" else "application/rss+xml"
            if fault == "short-body":  # Content-Length promises more than arrives
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            if fault == "cut-xml":  # a complete HTTP response carrying a truncated document
                cut = body[: max(200, int(len(body) * (0.3 + 0.6 * fault_rng.random())))]
                self._send(200, cut, {"Content-Type": ctype})
                return
            if fault == "new-etag":
                etag = f'"{etag.strip(chr(34))}-{time.monotonic_ns()}"'
            elif self.headers.get("If-None-Match") == etag:
                with world.lock:
                    feed.served["304"] += 1
                self._send(304, b"", {"ETag": etag})
                return
            self._send(200, body, {"Content-Type": ctype, "ETag": etag,
                                   "Last-Modified": format_datetime(modified, usegmt=True)})

    return Handler


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=300)
    parser.add_argument("--rate", type=float, default=1.0, help="Posts published per second, over all feeds.")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    world = World(args.feeds, args.seed)
    stop = threading.Event()
    server = Server(("127.0.0.1", 0), make_handler(world, stop))
    threading.Thread(target=publisher_loop, args=(world, args.rate, stop), daemon=True).start()
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def finish(*_: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, finish)
    threading.Thread(target=lambda: (sys.stdin.read(), finish()), daemon=True).start()
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    stop.wait()
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
