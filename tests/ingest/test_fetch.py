# ruff: noqa: F811  (pytest fixtures are imported, then named as parameters)
"""The Fetcher against a real local HTTP server: results, validators, redirects, limits, errors.

Only 127.0.0.1 receives traffic: refused destinations are IP literals or come from a fake
resolver, and `connect_log` records (and refuses) any connect elsewhere, so a test can prove a
refusal happened before any socket was opened.
"""

from __future__ import annotations

import gzip
import hashlib
import socket
import subprocess
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from aggregator.config import Settings
from aggregator.errors import FetchError
from aggregator.ingest.fetch import ACCEPT, Fetcher
from aggregator.ingest.models import FetchResult, Validators
from aggregator.ingest.netguard import AddressGuard
from tests.support.feedserver import (  # noqa: F401  (fixtures)
    HTML_PAGE,
    MIB,
    RSS_SAMPLE,
    Exchange,
    FeedServer,
    connect_log,
    feed_server,
)

CAP = MIB
LAST_MODIFIED = "Mon, 06 Jan 2025 10:00:00 GMT"


def make_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "allow_private_networks": True,
        "fetch_deadline": 2.0,
        "connect_timeout": 1.0,
        "max_body_bytes": CAP,
        "max_redirects": 5,
        "per_host_concurrency": 2,
    }
    return Settings(**(values | overrides))  # type: ignore[arg-type]


def no_dns(host: str, port: int) -> list[str]:
    """The resolver of most tests: a real lookup would send a packet to this machine's resolver."""
    raise socket.gaierror(socket.EAI_NONAME, f"tests make no DNS queries ({host})")


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    """Private addresses allowed (the server is on 127.0.0.1), and no DNS."""
    with Fetcher(make_settings(), guard=AddressGuard(allow_private=True, resolver=no_dns)) as made:
        yield made


def fetch_error(fetcher: Fetcher, url: str, validators: Validators = Validators()) -> FetchError:  # noqa: B008
    with pytest.raises(FetchError) as caught:
        fetcher.fetch(url, validators)
    return caught.value


# -- results and validators ------------------------------------------------------------------------


def test_200_returns_body_validators_and_freshness(fetcher: Fetcher, feed_server: FeedServer) -> None:
    feed_server.serve(
        "/feed.xml", RSS_SAMPLE, etag='"v1"', last_modified=LAST_MODIFIED, headers={"Cache-Control": "max-age=600"}
    )
    result = fetcher.fetch(feed_server.url("/feed.xml"))
    digest = hashlib.sha256(RSS_SAMPLE).hexdigest()
    assert (result.status, result.body, result.body_hash, result.unchanged) == (200, RSS_SAMPLE, digest, False)
    assert result.validators == Validators('"v1"', LAST_MODIFIED, digest)
    assert result.final_url == result.url == feed_server.url("/feed.xml")
    assert (result.permanent_url, result.max_age, result.retry_after) == (None, 600, None)
    assert result.content_type == "application/xml; charset=utf-8"
    sent = feed_server.requests.for_path("/feed.xml")[0]
    assert sent.header("User-Agent") == make_settings().user_agent
    assert sent.header("Accept") == ACCEPT
    assert sent.header("Accept-Encoding") == "gzip, deflate"
    assert sent.header("If-None-Match") is None


def test_304_when_validators_sent_verbatim_match(fetcher: Fetcher, feed_server: FeedServer) -> None:
    etag = 'W/"abc-123"'
    feed_server.serve("/feed.xml", RSS_SAMPLE, etag=etag, last_modified=LAST_MODIFIED)
    first = fetcher.fetch(feed_server.url("/feed.xml"))
    second = fetcher.fetch(feed_server.url("/feed.xml"), first.validators)
    assert (second.status, second.unchanged, second.body) == (304, True, b"")
    assert second.validators == first.validators
    assert feed_server.requests.statuses("/feed.xml") == [200, 304]
    conditional = feed_server.requests.for_path("/feed.xml")[1]
    assert conditional.header("If-None-Match") == etag
    assert conditional.header("If-Modified-Since") == LAST_MODIFIED


def test_304_carrying_new_validators_updates_them(fetcher: Fetcher, feed_server: FeedServer) -> None:
    feed_server.route("/feed.xml", lambda ex: ex.send(304, headers={"ETag": '"v2"'}))
    old = Validators('"v1"', "Sun, 05 Jan 2025 10:00:00 GMT", "hash-of-old-body")
    result = fetcher.fetch(feed_server.url("/feed.xml"), old)
    assert result.validators == Validators('"v2"', old.last_modified, old.body_hash)
    assert result.body_hash == old.body_hash


def test_server_ignoring_validators_is_unchanged_by_body_hash(fetcher: Fetcher, feed_server: FeedServer) -> None:
    feed_server.serve("/feed.xml", RSS_SAMPLE, etag='"v1"', honour_validators=False)
    first = fetcher.fetch(feed_server.url("/feed.xml"))
    again = fetcher.fetch(feed_server.url("/feed.xml"), first.validators)
    assert (again.status, again.unchanged) == (200, True)
    feed_server.serve("/feed.xml", RSS_SAMPLE + b"<!-- edited -->", etag='"v1"', honour_validators=False)
    edited = fetcher.fetch(feed_server.url("/feed.xml"), again.validators)
    assert not edited.unchanged
    assert edited.body_hash != first.body_hash


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", lambda b: gzip.compress(b)),
        ("deflate", zlib.compress),  # zlib-wrapped, as the RFC says
        ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw, as some servers send it
        ("identity", lambda b: b),
    ],
)
def test_compressed_bodies_are_decoded(fetcher: Fetcher, feed_server: FeedServer, encoding: str, compress) -> None:
    wire = compress(RSS_SAMPLE)
    feed_server.route("/feed.xml", lambda ex: ex.send(200, wire, {"Content-Encoding": encoding}))
    result = fetcher.fetch(feed_server.url("/feed.xml"))
    assert result.body == RSS_SAMPLE
    assert result.body_hash == hashlib.sha256(RSS_SAMPLE).hexdigest()


def test_compressed_static_route(fetcher: Fetcher, feed_server: FeedServer) -> None:
    feed_server.serve("/feed.xml", RSS_SAMPLE, compress=True)
    assert fetcher.fetch(feed_server.url("/feed.xml")).body == RSS_SAMPLE


def test_large_gzip_within_the_cap_is_decoded_exactly(feed_server: FeedServer) -> None:
    feed_server.gzip_bomb("/zeros", 3 * MIB)
    with Fetcher(make_settings(max_body_bytes=4 * MIB)) as fetcher:
        assert fetcher.fetch(feed_server.url("/zeros")).body == bytes(3 * MIB)


def test_unsupported_content_encoding(fetcher: Fetcher, feed_server: FeedServer) -> None:
    feed_server.route("/feed.xml", lambda ex: ex.send(200, b"\x8b\x00", {"Content-Encoding": "br"}))
    error = fetch_error(fetcher, feed_server.url("/feed.xml"))
    assert (error.code, error.temporary) == ("unsupported_encoding", False)


def test_html_page_is_returned_for_the_parser_to_judge(fetcher: Fetcher, feed_server: FeedServer) -> None:
    feed_server.html("/index.html")
    result = fetcher.fetch(feed_server.url("/index.html"))
    assert (result.status, result.body, result.content_type) == (200, HTML_PAGE, "text/html; charset=utf-8")


def test_200_carrying_retry_after_and_expires(fetcher: Fetcher, feed_server: FeedServer) -> None:
    expires = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    feed_server.serve("/feed.xml", RSS_SAMPLE, headers={"Retry-After": "3600", "Expires": expires})
    before = datetime.now(UTC)
    result = fetcher.fetch(feed_server.url("/feed.xml"))
    assert result.retry_after is not None
    assert before + timedelta(seconds=3599) <= result.retry_after <= datetime.now(UTC) + timedelta(seconds=3600)
    assert result.max_age is not None and 3500 <= result.max_age <= 3600


# -- redirects -------------------------------------------------------------------------------------


def redirect_chain(server: FeedServer, statuses: list[int], final: str = "/feed.xml") -> str:
    """/hop0 -> /hop1 -> ... -> final, one status per hop; returns the first URL."""
    server.serve(final, RSS_SAMPLE)
    paths = [f"/hop{i}" for i in range(len(statuses))] + [final]
    for here, there, status in zip(paths, paths[1:], statuses, strict=False):
        server.redirect(here, server.url(there), status)
    return server.url(paths[0])


def test_all_permanent_hops_give_permanent_url(fetcher: Fetcher, feed_server: FeedServer) -> None:
    result = fetcher.fetch(redirect_chain(feed_server, [301, 308]))
    assert result.final_url == result.permanent_url == feed_server.url("/feed.xml")
    assert [r.status for r in feed_server.requests] == [301, 308, 200]


@pytest.mark.parametrize("statuses", [[302], [307], [303], [301, 302], [308, 307]])
def test_any_temporary_hop_means_no_permanent_url(
    fetcher: Fetcher, feed_server: FeedServer, statuses: list[int]
) -> None:
    result = fetcher.fetch(redirect_chain(feed_server, statuses))
    assert (result.final_url, result.permanent_url) == (feed_server.url("/feed.xml"), None)


def test_relative_location(fetcher: Fetcher, feed_server: FeedServer) -> None:
    feed_server.serve("/feeds/main.xml", RSS_SAMPLE)
    feed_server.redirect("/old/feed", "../feeds/main.xml", 301)
    result = fetcher.fetch(feed_server.url("/old/feed"))
    assert result.permanent_url == feed_server.url("/feeds/main.xml")


def test_redirect_loop_is_detected_on_first_revisit(fetcher: Fetcher, feed_server: FeedServer) -> None:
    feed_server.redirect_loop("/a", "/b")
    error = fetch_error(fetcher, feed_server.url("/a"))
    assert (error.code, error.temporary) == ("too_many_redirects", False)
    assert [r.path for r in feed_server.requests] == ["/a", "/b"]


def test_redirect_limit(feed_server: FeedServer) -> None:
    with Fetcher(make_settings(max_redirects=3)) as fetcher:
        assert fetcher.fetch(redirect_chain(feed_server, [302] * 3)).status == 200
        error = fetch_error(fetcher, redirect_chain(feed_server, [302] * 4, final="/other.xml"))
    assert error.code == "too_many_redirects"


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://127.0.0.1/feed", "javascript:alert(1)"])
def test_redirect_to_unsupported_scheme(fetcher: Fetcher, feed_server: FeedServer, location: str) -> None:
    feed_server.redirect("/feed.xml", location)
    error = fetch_error(fetcher, feed_server.url("/feed.xml"))
    assert (error.code, error.temporary) == ("invalid_url", False)


def test_redirect_without_location_is_an_http_error(fetcher: Fetcher, feed_server: FeedServer) -> None:
    feed_server.serve("/feed.xml", b"", status=301)
    error = fetch_error(fetcher, feed_server.url("/feed.xml"))
    assert (error.code, error.status, error.temporary) == ("http_301", 301, False)


# -- time and size limits --------------------------------------------------------------------------


@pytest.mark.parametrize("in_headers", [False, True], ids=["trickled-body", "trickled-headers"])
def test_trickling_server_fails_at_the_total_deadline(feed_server: FeedServer, in_headers: bool) -> None:
    feed_server.slow("/slow", interval=0.02, in_headers=in_headers)
    with Fetcher(make_settings(fetch_deadline=0.5)) as fetcher:
        started = time.monotonic()
        error = fetch_error(fetcher, feed_server.url("/slow"))
        elapsed = time.monotonic() - started
    assert (error.code, error.temporary) == ("timeout", True)
    assert 0.45 <= elapsed < 1.5  # the trickle never ends: only the total deadline stops it


def test_declared_content_length_over_cap(fetcher: Fetcher, feed_server: FeedServer) -> None:
    feed_server.huge("/huge", CAP + 1)
    assert fetch_error(fetcher, feed_server.url("/huge")).code == "too_large"


def test_body_exactly_at_cap_is_accepted(fetcher: Fetcher, feed_server: FeedServer) -> None:
    feed_server.huge("/huge", CAP, content_length=False)
    assert len(fetcher.fetch(feed_server.url("/huge")).body) == CAP


def test_streamed_body_over_cap_without_content_length(fetcher: Fetcher, feed_server: FeedServer) -> None:
    feed_server.huge("/huge", 50 * CAP, content_length=False)
    error = fetch_error(fetcher, feed_server.url("/huge"))
    assert (error.code, error.temporary) == ("too_large", False)


@pytest.mark.parametrize("content_length", [True, False])
def test_gzip_bomb(fetcher: Fetcher, feed_server: FeedServer, content_length: bool) -> None:
    feed_server.gzip_bomb("/bomb", 10 * MIB, content_length=content_length)
    assert fetch_error(fetcher, feed_server.url("/bomb")).code == "too_large"


def test_gigabyte_gzip_bomb_never_costs_more_than_the_cap(fetcher: Fetcher, feed_server: FeedServer) -> None:
    feed_server.gzip_bomb("/bomb", 1024 * MIB)
    tracemalloc.start()
    try:
        error = fetch_error(fetcher, feed_server.url("/bomb"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.code == "too_large"
    assert peak < 3 * CAP


# -- HTTP failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_in_seconds(fetcher: Fetcher, feed_server: FeedServer, status: int) -> None:
    feed_server.throttled("/feed.xml", status, retry_after="120")
    before = datetime.now(UTC)
    error = fetch_error(fetcher, feed_server.url("/feed.xml"))
    assert (error.code, error.status, error.temporary) == (f"http_{status}", status, True)
    assert error.retry_after is not None
    assert before + timedelta(seconds=119) <= error.retry_after <= datetime.now(UTC) + timedelta(seconds=120)


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_as_http_date(fetcher: Fetcher, feed_server: FeedServer, status: int) -> None:
    when = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    feed_server.throttled("/feed.xml", status, retry_after=format_datetime(when, usegmt=True))
    error = fetch_error(fetcher, feed_server.url("/feed.xml"))
    assert (error.code, error.retry_after) == (f"http_{status}", when)


@pytest.mark.parametrize(
    ("status", "temporary"),
    [(404, False), (410, False), (401, False), (403, False), (451, False), (418, False), (408, True), (500, True)],
)
def test_http_error_statuses(fetcher: Fetcher, feed_server: FeedServer, status: int, temporary: bool) -> None:
    feed_server.serve("/feed.xml", b"nope", status=status)
    error = fetch_error(fetcher, feed_server.url("/feed.xml"))
    assert (error.code, error.status, error.temporary) == (f"http_{status}", status, temporary)
    assert error.retry_after is None
    assert error.url == feed_server.url("/feed.xml")


# -- network failures ------------------------------------------------------------------------------


def test_connection_refused(fetcher: Fetcher) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error = fetch_error(fetcher, f"http://127.0.0.1:{port}/feed.xml")
    assert (error.code, error.temporary) == ("connection", True)


def test_garbage_instead_of_http(fetcher: Fetcher, feed_server: FeedServer) -> None:
    def garbage(exchange: Exchange) -> None:
        exchange.record(0)
        exchange.close_after()
        exchange.write_raw(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")

    feed_server.route("/feed.xml", garbage)
    error = fetch_error(fetcher, feed_server.url("/feed.xml"))
    assert (error.code, error.temporary) == ("protocol", True)


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/feed.xml",
        "javascript:alert(1)",
        "data:text/xml,<rss/>",
        "gopher://127.0.0.1:70/",
        "http://",
        "http:///feed.xml",
        "//127.0.0.1/feed.xml",
        "feed.xml",
        "",
        "http://exa mple.org/",
        "http://127.0.0.1:99999/feed.xml",  # would wrap around to port 34463
        "http://127.0.0.1:0/feed.xml",
        "http://feeds\x00.test/",
    ],
)
def test_invalid_urls_never_touch_the_network(fetcher: Fetcher, connect_log: list[tuple[str, int]], url: str) -> None:
    error = fetch_error(fetcher, url)
    assert (error.code, error.temporary) == ("invalid_url", False)
    assert connect_log == []


def test_unresolvable_name(fetcher: Fetcher, connect_log: list[tuple[str, int]]) -> None:
    error = fetch_error(fetcher, "http://no-such-feed.test/feed.xml")
    assert (error.code, error.temporary) == ("dns", True)
    assert connect_log == []


def test_tls_to_a_plain_http_server(fetcher: Fetcher, feed_server: FeedServer) -> None:
    error = fetch_error(fetcher, f"https://127.0.0.1:{feed_server.port}/feed.xml")
    assert (error.code, error.temporary) == ("tls", True)


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    command = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    command += ["-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"]
    command += ["-addext", "subjectAltName=IP:127.0.0.1"]
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot make a test certificate with openssl: {exc}")
    return cert, key


def test_untrusted_certificate_is_a_permanent_tls_error(fetcher: Fetcher, self_signed: tuple[Path, Path]) -> None:
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*self_signed)
    with FeedServer(ssl_context=context) as server:
        server.serve("/feed.xml", RSS_SAMPLE)
        error = fetch_error(fetcher, server.url("/feed.xml"))
    assert (error.code, error.temporary) == ("tls", False)


# -- concurrency -----------------------------------------------------------------------------------


def fetch_all(fetcher: Fetcher, urls: list[str]) -> list[FetchResult]:
    with ThreadPoolExecutor(max_workers=len(urls)) as pool:
        return list(pool.map(fetcher.fetch, urls))


def test_per_host_concurrency_limit(fetcher: Fetcher, feed_server: FeedServer) -> None:
    gauge = feed_server.gauge("/feed.xml", hold=0.1)
    results = fetch_all(fetcher, [feed_server.url("/feed.xml")] * 6)
    assert [r.status for r in results] == [200] * 6
    assert (gauge.count, gauge.max_in_flight) == (6, 2)


def test_the_limit_is_per_host(feed_server: FeedServer) -> None:
    gauge = feed_server.gauge("/feed.xml", hold=0.1)
    urls = [feed_server.url("/feed.xml"), f"http://localhost:{feed_server.port}/feed.xml"] * 2
    with Fetcher(make_settings(per_host_concurrency=1)) as fetcher:
        fetch_all(fetcher, urls)
    assert (gauge.count, gauge.max_in_flight) == (4, 2)


def test_waiting_for_a_host_slot_counts_against_the_deadline(feed_server: FeedServer) -> None:
    feed_server.slow("/slow", interval=0.02)
    with Fetcher(make_settings(per_host_concurrency=1, fetch_deadline=1.0)) as fetcher:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(fetch_error, fetcher, feed_server.url("/slow")) for _ in range(2)]
            kinds = [future.result().code for future in futures]
        elapsed = time.monotonic() - started
    assert kinds == ["timeout", "timeout"]
    # the second fetch gave up waiting at its deadline (1 s), not after the first's and then its own (2 s)
    assert elapsed < 1.7
