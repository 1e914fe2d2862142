"""A real HTTP/1.1 server on 127.0.0.1 for tests: feeds with chosen headers, and failure routes.

Why a real server: the fetcher's deadline, size cap, redirects and address guard act on sockets,
so they are only proven against a socket. The server starts in a few milliseconds on a random
port, answers each connection in its own thread (a slow route never blocks the others), keeps
connections alive like real servers do, and on stop closes every connection, wakes every waiting
handler and joins every thread.

    from tests.support.feedserver import feed_server      # the pytest fixture (function scope)

    def test_conditional_get(feed_server):
        feed_server.serve("/feed.xml", RSS_SAMPLE, etag='"v1"')
        url = feed_server.url("/feed.xml")
        ...                                                # poll twice
        assert feed_server.requests.statuses("/feed.xml") == [200, 304]
        assert feed_server.requests.for_path("/feed.xml")[1].header("If-None-Match") == '"v1"'

Routes (a later registration of the same path replaces the earlier one; unknown paths get 404;
a path registered with a query string matches only that query, otherwise the query is ignored):

    serve(path, body, status=, headers=, etag=, last_modified=, honour_validators=, compress=)
    route(path, handler)            handler(exchange: Exchange) -> None, for anything special
    redirect(path, to, status=301)  Location sent exactly as given (relative or absolute)
    redirect_loop(a, b)             a -> b -> a ...
    slow(path, interval=, in_headers=)  one byte per interval, in the body or inside the headers
    huge(path, size, content_length=)   `size` bytes streamed, with Content-Length or chunked
    gzip_bomb(path, decompressed_size=) zeros, gzip-encoded; ~1 KiB on the wire per MiB, built
                                    by repeating one flushed deflate block, so even 1 GiB is cheap
    throttled(path, status=429, retry_after="120")   429/503 with Retry-After (seconds or date)
    html(path)                      an ordinary web page, text/html
    gauge(path) -> Gauge            holds each request briefly and records the most in flight

A custom handler answers through its `Exchange`: send(status, body, headers) for a whole
response; start(status, headers, chunked=) then write()/end() to stream; write_raw() for bytes
that are not HTTP; wait(seconds) to pause (returns True when the server is stopping: give up).
`FeedServer(ssl_context=...)` serves https. RSS_SAMPLE, ATOM_SAMPLE and HTML_PAGE are bodies.

`handler_errors` keeps any exception a route handler raised (the client got a 500).
`requests` is a thread-safe log of every answered request (method, path, lower-cased headers,
status sent). A request is logged *before* its status line is written, so once a client has seen
the response the log already holds it: no waiting needed in tests.

The `connect_log` fixture records every outgoing socket connect of the test and refuses any
destination but 127.0.0.1: address-guard tests assert it stays empty.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import socket
import ssl
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

RSS_SAMPLE = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Sample</title><link>http://example.org/</link>
<description>Sample feed</description>
<item><title>First</title><link>http://example.org/1</link><guid>http://example.org/1</guid>
<pubDate>Mon, 06 Jan 2025 10:00:00 GMT</pubDate><description>First post</description></item>
</channel></rss>
"""
ATOM_SAMPLE = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Sample</title><id>urn:uuid:sample</id>
<updated>2025-01-06T10:00:00Z</updated>
<entry><title>First</title><id>urn:uuid:sample-1</id><updated>2025-01-06T10:00:00Z</updated>
<link href="http://example.org/1"/><summary>First post</summary></entry></feed>
"""
HTML_PAGE = b"<!doctype html><html><head><title>Not a feed</title></head><body><p>Hello</p></body></html>"

MIB = 1 << 20
Handler = Callable[["Exchange"], None]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    status: int | None  # None when the handler never answered

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class RequestLog:
    """Every request the server answered, in order; safe to read while the server runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[RecordedRequest] = []

    def append(self, item: RecordedRequest) -> None:
        with self._lock:
            self._items.append(item)

    def snapshot(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._items)

    def __iter__(self) -> Iterator[RecordedRequest]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        return len(self.snapshot())

    def for_path(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.snapshot() if r.path == path]

    def statuses(self, path: str) -> list[int | None]:
        return [r.status for r in self.for_path(path)]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class Exchange:
    """One request as a route handler sees it, with the few ways to answer it."""

    def __init__(self, handler: _RequestHandler, server: FeedServer) -> None:
        self._handler = handler
        self.server = server
        self.method = handler.command
        self.path = handler.path
        self.headers = {k.lower(): v for k, v in handler.headers.items()}
        self.status: int | None = None
        self._chunked = False
        self.client_gone = False

    @property
    def stopping(self) -> threading.Event:
        return self.server.stopping

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        """A complete response with Content-Length (no body for 304)."""
        headers = dict(headers or {})
        if status != 304:
            headers.setdefault("Content-Length", str(len(body)))
        self.start(status, headers)
        if body and status != 304:
            self.write(body)

    def start(self, status: int, headers: dict[str, str] | None = None, *, chunked: bool = False) -> None:
        """Status line and headers. Without Content-Length or chunked, the body ends at close."""
        headers = dict(headers or {})
        self._chunked = chunked
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
        elif "Content-Length" not in headers and status not in (204, 304):
            headers["Connection"] = "close"
            self._handler.close_connection = True
        self.record(status)
        self._handler.send_response_only(status)
        for name, value in headers.items():
            self._handler.send_header(name, value)
        self._handler.end_headers()
        self.flush()

    def write(self, data: bytes) -> bool:
        """Body bytes; False (and nothing raised) once the client has gone away."""
        if self._chunked:
            data = b"%x\r\n%s\r\n" % (len(data), data) if data else b""
        return self.write_raw(data)

    def end(self) -> bool:
        """Finish a chunked body."""
        return self.write_raw(b"0\r\n\r\n") if self._chunked else self.flush()

    def write_raw(self, data: bytes) -> bool:
        if self.client_gone:
            return False
        try:
            self._handler.wfile.write(data)
            self._handler.wfile.flush()
        except OSError:
            self.client_gone = True
            self._handler.close_connection = True
        return not self.client_gone

    def flush(self) -> bool:
        return self.write_raw(b"")

    def close_after(self) -> None:
        """Drop the connection once the handler returns, for responses left unfinished on purpose."""
        self._handler.close_connection = True

    def record(self, status: int) -> None:
        """Log the request with its status; done before the status line leaves (see module doc)."""
        if self.status is None:
            self.status = status
            self.server.requests.append(RecordedRequest(self.method, self.path, self.headers, status))

    def wait(self, seconds: float) -> bool:
        """Pause without outliving the server; True when the server is stopping."""
        return self.stopping.wait(seconds)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 5  # an idle kept-alive connection is dropped after this
    server: _Server

    def do_GET(self) -> None:
        self.server.owner.dispatch(self)

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass


class _Server(ThreadingHTTPServer):
    """Tracks open connections so stop() can cut them and join their threads promptly."""

    daemon_threads = True
    block_on_close = True  # server_close() joins every handler thread
    request_queue_size = 128  # socketserver's 5 drops SYNs when a worker opens many connections at once

    def __init__(self, owner: FeedServer) -> None:
        self.owner = owner
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _RequestHandler)

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet: clients in these tests hang up mid-response (and mid-handshake) on purpose."""

    def cut_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@dataclass
class Gauge:
    """Counts requests in flight on a route; `max_in_flight` is the most seen at once."""

    in_flight: int = 0
    max_in_flight: int = 0
    count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.count += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1


class FeedServer:
    """The server and its routes; see the module docstring for the route builders."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.requests = RequestLog()
        self.handler_errors: list[Exception] = []  # exceptions raised by route handlers
        self.stopping = threading.Event()
        self.scheme = "http" if ssl_context is None else "https"
        self._routes: dict[str, Handler] = {}
        self._server = _Server(self)
        if ssl_context is not None:  # handshake lazily, in the connection's thread, not in accept()
            self._server.socket = ssl_context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self._thread = threading.Thread(target=self._serve, name="feed-server", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def start(self) -> FeedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.cut_connections()
        self._server.server_close()
        if self._thread.is_alive():
            self._thread.join()

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        self._server.serve_forever(poll_interval=0.01)

    def dispatch(self, handler: _RequestHandler) -> None:
        exchange = Exchange(handler, self)
        route = self._routes.get(handler.path) or self._routes.get(handler.path.split("?", 1)[0])
        try:
            if route is None:
                exchange.send(404, b"not found", {"Content-Type": "text/plain"})
            else:
                route(exchange)
        except OSError:
            handler.close_connection = True
        except Exception as exc:  # a broken test handler: keep it visible, answer 500 if still possible
            self.handler_errors.append(exc)
            if exchange.status is None:
                exchange.send(500, repr(exc).encode(), {"Content-Type": "text/plain"})
        if exchange.status is None:  # the handler never answered: log it and drop the connection
            self.requests.append(RecordedRequest(exchange.method, exchange.path, exchange.headers, None))
            handler.close_connection = True

    # -- routes ---------------------------------------------------------------------------------

    def route(self, path: str, handler: Handler) -> None:
        self._routes[path] = handler

    def serve(
        self,
        path: str,
        body: bytes,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
        honour_validators: bool = True,
        compress: bool = False,
    ) -> None:
        """A static response; answers 304 to a matching conditional GET when honour_validators."""
        fixed = {"Content-Type": "application/xml; charset=utf-8", **(headers or {})}
        if etag is not None:
            fixed["ETag"] = etag
        if last_modified is not None:
            fixed["Last-Modified"] = last_modified
        if compress:
            body = gzip.compress(body, mtime=0)
            fixed["Content-Encoding"] = "gzip"

        def static(exchange: Exchange) -> None:
            if honour_validators and _not_modified(exchange, etag, last_modified):
                exchange.send(304, headers={k: v for k, v in fixed.items() if k != "Content-Type"})
            else:
                exchange.send(status, body, fixed)

        self.route(path, static)

    def redirect(self, path: str, to: str, status: int = 301) -> None:
        self.route(path, lambda ex: ex.send(status, b"", {"Location": to}))

    def redirect_loop(self, a: str, b: str, status: int = 302) -> None:
        self.redirect(a, b, status)
        self.redirect(b, a, status)

    def throttled(self, path: str, status: int = 429, retry_after: str = "120") -> None:
        self.serve(path, b"slow down", status=status, headers={"Retry-After": retry_after})

    def html(self, path: str, body: bytes = HTML_PAGE) -> None:
        self.serve(path, body, headers={"Content-Type": "text/html; charset=utf-8"})

    def slow(self, path: str, *, interval: float = 0.05, in_headers: bool = False) -> None:
        """One byte per `interval` until the client or the server gives up."""
        self.route(path, functools.partial(_trickle, interval=interval, in_headers=in_headers))

    def huge(self, path: str, size: int, *, content_length: bool = True) -> None:
        self.route(path, functools.partial(_stream_filler, size=size, content_length=content_length))

    def gzip_bomb(self, path: str, decompressed_size: int = 10 * MIB, *, content_length: bool = True) -> None:
        blocks = -(-decompressed_size // MIB)
        self.route(path, functools.partial(_stream_gzip_zeros, blocks=blocks, content_length=content_length))

    def gauge(self, path: str, body: bytes = RSS_SAMPLE, *, hold: float = 0.1) -> Gauge:
        gauge = Gauge()

        def counted(exchange: Exchange) -> None:
            gauge.enter()
            try:
                exchange.wait(hold)
                exchange.send(200, body, {"Content-Type": "application/rss+xml"})
            finally:
                gauge.leave()

        self.route(path, counted)
        return gauge


def _not_modified(exchange: Exchange, etag: str | None, last_modified: str | None) -> bool:
    if_none_match = exchange.header("If-None-Match")
    if if_none_match is not None:  # RFC 9110: If-None-Match wins over If-Modified-Since
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return etag is not None and ("*" in tags or etag.removeprefix("W/") in tags)
    since = exchange.header("If-Modified-Since")
    if since is None or last_modified is None:
        return False
    try:
        return parsedate_to_datetime(since) >= parsedate_to_datetime(last_modified)
    except (TypeError, ValueError):
        return False


def _trickle(exchange: Exchange, *, interval: float, in_headers: bool) -> None:
    if in_headers:
        exchange.record(200)
        exchange.close_after()
        exchange.write_raw(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    else:
        exchange.start(200, {"Content-Type": "application/xml", "Content-Length": "100000"})
    for _ in range(100_000):
        if exchange.wait(interval) or not exchange.write_raw(b"a"):
            return


def _stream_filler(exchange: Exchange, *, size: int, content_length: bool) -> None:
    headers = {"Content-Type": "application/xml"}
    if content_length:
        headers["Content-Length"] = str(size)
    exchange.start(200, headers, chunked=not content_length)
    piece = b"<!-- filler -->\n" * 4096
    sent = 0
    while sent < size and not exchange.stopping.is_set():
        part = piece[: size - sent]
        if not exchange.write(part):
            return
        sent += len(part)
    exchange.end()


@functools.cache
def _gzip_parts() -> tuple[bytes, bytes]:
    """The gzip header and one deflate block for 1 MiB of zeros.

    After a full flush the compressor starts afresh, so every further MiB of zeros compresses to
    the very same bytes: a bomb of any size is that block repeated, with a computed trailer.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    header = compressor.compress(bytes(MIB))
    return header, compressor.flush(zlib.Z_FULL_FLUSH)


def _stream_gzip_zeros(exchange: Exchange, *, blocks: int, content_length: bool) -> None:
    header, block = _gzip_parts()
    headers = {"Content-Type": "application/xml", "Content-Encoding": "gzip"}
    if content_length:
        headers["Content-Length"] = str(len(header) + blocks * len(block) + 10)
    exchange.start(200, headers, chunked=not content_length)
    crc = 0
    zeros = bytes(MIB)
    if not exchange.write(header):
        return
    for _ in range(blocks):
        if exchange.stopping.is_set() or not exchange.write(block):
            return
        crc = zlib.crc32(zeros, crc)
    size = (blocks * MIB) & 0xFFFFFFFF
    exchange.write(b"\x03\x00" + crc.to_bytes(4, "little") + size.to_bytes(4, "little"))
    exchange.end()


@pytest.fixture
def connect_log(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every outgoing socket connect during the test; any destination but 127.0.0.1 is refused.

    A safety net and a witness: tests of the address guard assert this stays empty, proving the
    refusal happened before a socket was opened, and nothing can reach a private range even if
    the guard were broken.
    """
    attempts: list[tuple[str, int]] = []
    original = socket.socket.connect

    def connect(sock: socket.socket, address: tuple[str, int]) -> None:
        attempts.append((address[0], address[1]))
        if address[0] != "127.0.0.1":
            raise ConnectionRefusedError(f"tests may only connect to 127.0.0.1, not {address[0]}")
        original(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", lambda sock, address: connect(sock, address) or 0)
    return attempts


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A started FeedServer on 127.0.0.1, stopped (connections cut, threads joined) after the test."""
    with FeedServer() as server:
        yield server
