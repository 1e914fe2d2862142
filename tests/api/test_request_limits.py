"""Request limits (aggregator.web.guards): a body over AGGREGATOR_HTTP_MAX_BODY_BYTES is refused with
413 before it is read, on every route; a URL over 8 KB gets 414; both in the app's error shape.

The streamed cases run against a real server process (`aggregator serve`'s entry point under
uvicorn) over a raw socket, because a test client may buffer a body before the app sees it: a
200 MB chunked upload must be answered 413 after a few megabytes at most, and the server's memory
must not grow by what was sent (it grew from 129 to 690 MB before).
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aggregator.web.guards import MAX_URL_BYTES
from tests.api.conftest import ADMIN_KEY, Corpus
from tests.support.webserver import WebProcess, web_process

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 64 * 1024  # the default of AGGREGATOR_HTTP_MAX_BODY_BYTES
MB = 1024 * 1024
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}
WRITES = [  # every route that reads a body, and some that do not
    ("POST", "/api/v1/subscriptions", JSON),
    ("POST", "/api/v1/sources", JSON),
    ("PATCH", "/api/v1/sources/1", JSON),
    ("POST", "/api/v1/saved-feeds", JSON),
    ("POST", "/subscribe", FORM),
    ("POST", "/subscriptions/manage/not-a-token", FORM),
    ("GET", "/api/v1/posts", JSON),
    ("GET", "/feeds/atom", JSON),
]


def json_padded(size: int) -> bytes:
    """A JSON object of exactly `size` bytes."""
    frame = b'{"email": ""}'
    return frame[:-2] + b"x" * (size - len(frame)) + frame[-2:]


@pytest.mark.parametrize(("method", "path", "headers"), WRITES, ids=[f"{m} {p}" for m, p, _ in WRITES])
def test_a_body_over_the_limit_is_a_413_on_every_route(corpus: Corpus, method: str, path: str,
                                                       headers: dict[str, str]) -> None:
    response = corpus.client.request(method, path, content=json_padded(LIMIT + 1),
                                     headers={**headers, "X-API-Key": ADMIN_KEY})
    assert response.status_code == 413, response.text
    message = f"the request body is larger than {LIMIT} bytes"
    if path.startswith("/feeds/"):
        assert response.headers["content-type"].startswith("text/plain") and response.text == message + "\n"
    else:
        assert response.json()["error"] == {"code": "too_large", "message": message, "details": {}}


def test_a_body_at_the_limit_is_read(corpus: Corpus) -> None:
    response = corpus.client.post("/api/v1/subscriptions", content=json_padded(LIMIT), headers=JSON)
    assert response.status_code == 400, response.text  # read and judged: the address is too long
    assert response.json()["error"]["details"]["parameter"] == "email"


def test_a_url_over_8_kb_is_a_414(corpus: Corpus) -> None:
    fits = "/api/v1/posts?q=" + "x" * (MAX_URL_BYTES - len("/api/v1/posts") - len("q=") - 1)
    assert len(fits.encode()) == MAX_URL_BYTES
    assert corpus.client.get(fits).status_code == 400  # read: q may have 256 characters
    too_long = corpus.client.get(fits + "x")
    assert too_long.status_code == 414
    assert too_long.json()["error"]["code"] == "uri_too_long"
    feed = corpus.client.get("/feeds/atom?q=" + "x" * MAX_URL_BYTES)
    assert feed.status_code == 414 and feed.text == f"the URL is longer than {MAX_URL_BYTES} bytes\n"


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebProcess]:
    """`aggregator serve` as a real process (uvicorn with its default parser)."""
    tmp = tmp_path_factory.mktemp("limits")
    env = {"DATABASE_URL": database_url, "AGGREGATOR_FEEDS_FILE": str(tmp / "none.yaml")}
    with web_process("run_web", env) as found:
        yield found


@dataclass
class Exchange:
    status: int
    headers: dict[str, str]
    body: bytes
    sent: int  # body bytes the client got to send before the answer came


def exchange(port: int, head: bytes, body_size: int = 0, *, chunked: bool = False, seconds: float = 60.0,
             head_only: bool = False) -> Exchange:
    """Send a request head, then up to `body_size` body bytes (chunked or not) for as long as the
    server has not answered; read the answer. The server reading everything would show as `sent`
    reaching `body_size`."""
    piece = b"x" * (64 * 1024)
    frame = b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece
    sent, pending, answer = 0, b"", b""
    deadline = time.monotonic() + seconds
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        while time.monotonic() < deadline:
            more = sent < body_size or pending
            readable, writable, _ = select.select([sock], [sock] if more else [], [], 1.0)
            if readable:
                chunk = sock.recv(65536)
                answer += chunk
                if not chunk or complete(answer, head_only):
                    break
            elif writable:
                if not pending:
                    pending = frame if sent + len(piece) <= body_size else b"0\r\n\r\n" if chunked else b""
                if pending:
                    written = sock.send(pending)
                    pending = pending[written:]
                    sent += written
                if sent >= body_size and not pending:
                    sent = body_size
        else:
            raise AssertionError("no answer before the deadline")
    status_line, _, rest = answer.partition(b"\r\n")
    header_text, _, body = rest.partition(b"\r\n\r\n")
    headers = dict(line.decode().lower().split(": ", 1) for line in header_text.split(b"\r\n") if line)
    return Exchange(int(status_line.split()[1]), headers, body, sent)


def complete(answer: bytes, head_only: bool) -> bool:
    head, found, body = answer.partition(b"\r\n\r\n")
    if not found or head_only:
        return bool(found)
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_declared_200_mb_body_is_refused_before_a_byte_is_sent(server: WebProcess) -> None:
    head = request_head("POST", "/api/v1/subscriptions", {**JSON, "Content-Length": str(200 * MB)})
    answer = exchange(server.port, head)
    assert answer.status == 413 and answer.sent == 0
    assert json.loads(answer.body)["error"]["code"] == "too_large"


@pytest.mark.parametrize(("path", "headers"), [("/api/v1/subscriptions", JSON), ("/subscribe", FORM)])
def test_a_streamed_200_mb_body_is_cut_off_at_the_limit(server: WebProcess, path: str, headers: dict[str, str]) -> None:
    before = server.rss
    head = request_head("POST", path, {**headers, "Transfer-Encoding": "chunked"})
    answer = exchange(server.port, head, 200 * MB, chunked=True)
    grown = server.rss - before
    print(f"{path}: answered after {answer.sent / MB:.1f} MB sent; server memory grew {grown / MB:.1f} MB")
    assert answer.status == 413, answer.body
    assert json.loads(answer.body)["error"]["code"] == "too_large"
    assert answer.sent < 16 * MB, "the server read on past the limit"
    assert grown < 32 * MB


def test_the_servers_own_limits(server: WebProcess) -> None:
    """What happens to an over-long URL: the app answers 414 in its shape up to what uvicorn's
    parser (httptools) takes, about 80 KB of request head; past that uvicorn answers by itself, a
    plain-text 400, before the app is called (documented in README)."""
    app_refused = exchange(server.port, request_head("GET", "/api/v1/posts?q=" + "x" * 9_000, {}))
    assert app_refused.status == 414 and json.loads(app_refused.body)["error"]["code"] == "uri_too_long"
    server_refused = exchange(server.port, request_head("GET", "/api/v1/posts?q=" + "x" * 100_000, {}))
    assert server_refused.status == 400
    assert server_refused.headers["content-type"].startswith("text/plain")
    assert server_refused.body == b"Invalid HTTP request received."


def test_head_on_a_real_server(server: WebProcess) -> None:
    """HEAD through uvicorn: the GET's status and Content-Length, no body (the next answer on the
    same connection would be garbled otherwise)."""
    for path in ("/feeds/atom", "/api/v1/posts", "/healthz", "/docs", "/docs/assets/swagger-ui.css"):
        got = exchange(server.port, request_head("GET", path, {"Connection": "close"}))
        head = exchange(server.port, request_head("HEAD", path, {}), head_only=True)
        assert head.status == got.status == 200, path
        assert head.headers["content-length"] == got.headers["content-length"] == str(len(got.body)), path
        assert head.body == b"", path
