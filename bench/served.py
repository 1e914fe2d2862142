"""A loopback HTTP server for the ingest benchmark: every copy of every feed file, with validators.

Run by bench_ingest.py as its own process (so its CPU and memory are not the pipeline's):

    python -m bench.served --feeds-dir ../shared/data/feeds --copies 10

It binds 127.0.0.1 on a free port, prints one JSON line {"port": ..., "paths": [...]} when it is ready,
and serves until its standard input closes (its parent exited) or it gets SIGTERM.

Each feed answers like a careful static server: a strong ETag and a Last-Modified, 304 Not Modified
for a matching If-None-Match (or, without one, an If-Modified-Since not older than the file), gzip
when the client accepts it, HTTP/1.1 keep-alive. GET /__stats returns the status counts so far.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import signal
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.feedcopies import all_copies, content_type_for, feed_files

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Resource:
    body: bytes
    gzipped: bytes
    etag: str
    last_modified: str
    modified_at: datetime
    content_type: str


def build_resources(folder: Path, copies: int) -> dict[str, Resource]:
    modified_at = datetime.now(UTC).replace(microsecond=0)
    resources = {}
    for path, body in all_copies(feed_files(folder), copies):
        resources[path] = Resource(
            body=body,
            gzipped=gzip.compress(body, compresslevel=6, mtime=0),
            etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"',
            last_modified=format_datetime(modified_at, usegmt=True),
            modified_at=modified_at,
            content_type=content_type_for(body),
        )
    return resources


class FeedServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, resources: dict[str, Resource]) -> None:
        super().__init__((LOOPBACK, 0), Handler)
        self.resources = resources
        self.stats: Counter[str] = Counter()
        self.stats_lock = threading.Lock()

    def count(self, key: str) -> None:
        with self.stats_lock:
            self.stats[key] += 1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, a keep-alive client's delayed ACK then adds
    # 40 ms to every response on Linux loopback. Real servers set TCP_NODELAY; so do we.
    disable_nagle_algorithm = True
    server: FeedServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/__stats":
            with self.server.stats_lock:
                self._send(200, json.dumps(dict(self.server.stats)).encode(), {"Content-Type": "application/json"})
            return
        resource = self.server.resources.get(self.path.split("?", 1)[0])
        if resource is None:
            self.server.count("404")
            self._send(404, b"not found\n", {"Content-Type": "text/plain"})
            return
        validators = {"ETag": resource.etag, "Last-Modified": resource.last_modified}
        if self._not_modified(resource):
            self.server.count("304")
            self._send(304, b"", validators)
            return
        headers = {**validators, "Content-Type": resource.content_type, "Vary": "Accept-Encoding"}
        body = resource.body
        if "gzip" in self.headers.get("Accept-Encoding", ""):
            body, headers["Content-Encoding"] = resource.gzipped, "gzip"
        self.server.count("200")
        self._send(200, body, headers)

    def _not_modified(self, resource: Resource) -> bool:
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None:  # it wins over If-Modified-Since (RFC 9110 13.2.2)
            tags = [t.strip() for t in if_none_match.split(",")]
            return "*" in tags or resource.etag in tags or f"W/{resource.etag}" in tags
        since = self.headers.get("If-Modified-Since")
        if since:
            try:
                return parsedate_to_datetime(since) >= resource.modified_at
            except (TypeError, ValueError):
                return False
        return False

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if status != 304:
            self.wfile.write(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds-dir", type=Path, required=True)
    parser.add_argument("--copies", type=int, default=10)
    args = parser.parse_args()
    server = FeedServer(build_resources(args.feeds_dir, args.copies))
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())

    def stop_when_parent_goes() -> None:
        sys.stdin.read()  # EOF: the benchmark closed our stdin or died
        server.shutdown()

    threading.Thread(target=stop_when_parent_goes, daemon=True).start()
    port = server.server_address[1]
    print(json.dumps({"port": port, "paths": sorted(server.resources)}), flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
