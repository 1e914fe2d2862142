# ruff: noqa: F811  (pytest fixtures are imported, then named as parameters)
"""The address guard: which addresses are public, and that sockets only go to checked addresses.

Only 127.0.0.1 ever receives a packet here: other addresses come from fake resolvers or IP
literals, and `connect_log` refuses (and records) any other destination.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator

import pytest

from aggregator.config import Settings
from aggregator.errors import FetchError
from aggregator.ingest.fetch import Fetcher
from aggregator.ingest.netguard import (
    AddressGuard,
    BlockedAddressError,
    GuardedBackend,
    ResolutionError,
    ResolutionTimeout,
    is_public_address,
)
from tests.support.feedserver import RSS_SAMPLE, FeedServer, connect_log, feed_server  # noqa: F401  (fixtures)

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "2606:4700:4700::1111",
    "2001:4860:4860::8888",
    "::ffff:8.8.8.8",  # IPv4-mapped public
    "2002:808:808::1",  # 6to4 of 8.8.8.8
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
]
NOT_PUBLIC = [
    "127.0.0.1",
    "127.1.2.3",
    "10.0.0.1",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # CGNAT
    "100.127.255.255",
    "0.0.0.0",
    "0.1.2.3",
    "224.0.0.1",  # multicast
    "239.255.255.250",
    "240.0.0.1",  # reserved
    "255.255.255.255",
    "192.0.0.1",
    "192.0.2.1",  # documentation
    "198.18.0.1",  # benchmarking
    "::1",
    "::",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "fec0::1",  # old site-local
    "ff02::1",
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",  # IPv4-compatible (deprecated), reserved
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b:1::1",  # local-use NAT64
    "2001:db8::1",  # documentation
    "100::1",  # discard-only
]


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_non_public_addresses(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("guard", "port", "answers", "allowed"),
    [
        (AddressGuard(), 80, ["8.8.8.8"], True),
        (AddressGuard(), 80, ["8.8.8.8", "10.0.0.1"], False),  # one bad record refuses the host
        (AddressGuard(), 80, ["10.0.0.1", "8.8.8.8"], False),
        (AddressGuard(allow_private=True), 80, ["127.0.0.1", "10.0.0.1"], True),
        (AddressGuard.allowing(("127.0.0.1", 8080)), 8080, ["127.0.0.1"], True),
        (AddressGuard.allowing(("127.0.0.1", 8080)), 8081, ["127.0.0.1"], False),  # other port
        (AddressGuard.allowing(("127.0.0.1", 8080)), 8080, ["::ffff:127.0.0.1"], False),
        (AddressGuard.allowing(("127.0.0.1", 8080)), 8080, ["127.0.0.2"], False),
    ],
)
def test_guard_check(guard: AddressGuard, port: int, answers: list[str], allowed: bool) -> None:
    if allowed:
        assert guard.check("host.test", port, answers) == [ipaddress.ip_address(a) for a in answers]
    else:
        with pytest.raises(BlockedAddressError):
            guard.check("host.test", port, answers)


@pytest.mark.parametrize("answers", [[], ["not-an-address"]])
def test_guard_check_rejects_empty_or_garbage_answers(answers: list[str]) -> None:
    with pytest.raises(ResolutionError):
        AddressGuard().check("host.test", 80, answers)


class FakeResolver:
    """Answers from a script, one answer per call (the last repeats), and counts the calls."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.calls = 0

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls += 1
        return self.answers[min(self.calls, len(self.answers)) - 1]


@pytest.fixture
def backends() -> Iterator[list[GuardedBackend]]:
    made: list[GuardedBackend] = []
    yield made
    for backend in made:
        backend.close()


def make_backend(backends: list[GuardedBackend], guard: AddressGuard) -> GuardedBackend:
    backend = GuardedBackend(guard)
    backends.append(backend)
    return backend


def test_blocked_name_is_refused_before_any_connect(
    backends: list[GuardedBackend], connect_log: list[tuple[str, int]]
) -> None:
    backend = make_backend(backends, AddressGuard(resolver=FakeResolver(["169.254.169.254"])))
    with pytest.raises(BlockedAddressError):
        backend.connect_tcp("metadata.test", 80, timeout=1)
    assert connect_log == []


def test_connects_to_the_address_it_checked_not_a_second_answer(
    backends: list[GuardedBackend], feed_server: FeedServer, connect_log: list[tuple[str, int]]
) -> None:
    """DNS rebinding: a name answering 127.0.0.1 (allowed here), then 10.0.0.1.

    A client that checks one lookup and connects by name would do a second lookup and reach
    10.0.0.1 (refused and logged by connect_log); the guard resolves once and connects to the IP.
    """
    resolver = FakeResolver(["127.0.0.1"], ["10.0.0.1"])
    backend = make_backend(backends, AddressGuard.allowing(feed_server.address, resolver=resolver))
    stream = backend.connect_tcp("rebind.test", feed_server.port, timeout=1)
    stream.close()
    assert resolver.calls == 1
    assert connect_log == [("127.0.0.1", feed_server.port)]


def test_ip_literal_needs_no_resolver(
    backends: list[GuardedBackend], feed_server: FeedServer, connect_log: list[tuple[str, int]]
) -> None:
    def no_lookups(host: str, port: int) -> list[str]:
        raise AssertionError("an IP literal was sent to the resolver")

    backend = make_backend(backends, AddressGuard.allowing(feed_server.address, resolver=no_lookups))
    backend.connect_tcp("127.0.0.1", feed_server.port, timeout=1).close()
    assert connect_log == [("127.0.0.1", feed_server.port)]


def test_resolver_failure_is_a_resolution_error(backends: list[GuardedBackend]) -> None:
    def nxdomain(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    backend = make_backend(backends, AddressGuard(resolver=nxdomain))
    with pytest.raises(ResolutionError):
        backend.connect_tcp("nowhere.test", 80, timeout=1)


def test_hanging_resolver_times_out(backends: list[GuardedBackend]) -> None:
    release = threading.Event()

    def hang(host: str, port: int) -> list[str]:
        release.wait(5)
        return ["8.8.8.8"]

    backend = make_backend(backends, AddressGuard(resolver=hang))
    try:
        with pytest.raises(ResolutionTimeout):
            backend.connect_tcp("slow-dns.test", 80, timeout=0.1)
    finally:
        release.set()


def test_unix_sockets_are_refused(backends: list[GuardedBackend]) -> None:
    backend = make_backend(backends, AddressGuard(allow_private=True))
    with pytest.raises(BlockedAddressError):
        backend.connect_unix_socket("/var/run/docker.sock")


# -- through the Fetcher ---------------------------------------------------------------------------

STRICT = Settings(allow_private_networks=False, fetch_deadline=2.0, connect_timeout=1.0)


def refused(fetcher: Fetcher, url: str) -> FetchError:
    with pytest.raises(FetchError) as caught:
        fetcher.fetch(url)
    return caught.value


BLOCKED_HOSTS = [
    "127.0.0.1",
    "localhost",  # resolved from /etc/hosts, no DNS query
    "169.254.169.254",
    "10.0.0.1",
    "192.168.0.1",
    "100.64.0.1",
    "0.0.0.0",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:169.254.169.254]",
    "[fe80::1]",
    "[fd00::1]",
    "224.0.0.1",
]


@pytest.mark.parametrize("host", BLOCKED_HOSTS)
def test_private_addresses_are_refused_by_default(
    feed_server: FeedServer, connect_log: list[tuple[str, int]], host: str
) -> None:
    feed_server.serve("/feed.xml", RSS_SAMPLE)
    with Fetcher(STRICT) as fetcher:
        error = refused(fetcher, f"http://{host}:{feed_server.port}/feed.xml")
    assert (error.code, error.temporary) == ("blocked_address", False)
    assert connect_log == []
    assert len(feed_server.requests) == 0


@pytest.fixture
def guarded(feed_server: FeedServer) -> Iterator[Fetcher]:
    """Default-deny, except the test server itself: the first hop is allowed, nothing else."""
    guard = AddressGuard.allowing(feed_server.address)
    with Fetcher(STRICT, guard=guard) as fetcher:
        yield fetcher


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/feed.xml",
        "http://[::ffff:10.0.0.1]/feed.xml",
        "http://127.0.0.1:{other}/feed.xml",  # loopback, but not the allowed server
        "http://[::1]:{port}/feed.xml",
    ],
)
def test_redirect_to_a_blocked_address_is_refused_before_connecting(
    guarded: Fetcher, feed_server: FeedServer, connect_log: list[tuple[str, int]], target: str
) -> None:
    feed_server.serve("/feed.xml", RSS_SAMPLE)
    assert guarded.fetch(feed_server.url("/feed.xml")).status == 200  # the allowed server is reachable
    feed_server.redirect("/moved", target.format(other=feed_server.port + 1, port=feed_server.port))
    error = refused(guarded, feed_server.url("/moved"))
    assert (error.code, error.temporary) == ("blocked_address", False)
    assert set(connect_log) == {feed_server.address}
    assert feed_server.requests.statuses("/moved") == [301]


def test_hostname_connects_to_the_checked_address_with_its_host_header(
    feed_server: FeedServer, connect_log: list[tuple[str, int]]
) -> None:
    feed_server.serve("/feed.xml", RSS_SAMPLE)
    guard = AddressGuard.allowing(feed_server.address, resolver=lambda host, port: ["127.0.0.1"])
    with Fetcher(STRICT, guard=guard) as fetcher:
        result = fetcher.fetch(f"http://feeds.test:{feed_server.port}/feed.xml")
    assert result.body == RSS_SAMPLE
    assert feed_server.requests.for_path("/feed.xml")[0].header("Host") == f"feeds.test:{feed_server.port}"
    assert connect_log == [feed_server.address]
