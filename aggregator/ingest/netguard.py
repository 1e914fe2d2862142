"""The connection path of every fetch: which addresses a socket may go to, and until when.

Why the address guard exists: anyone who can add a feed URL could otherwise make the worker fetch
http://169.254.169.254/ (cloud credentials), an admin page on 10.x, or a service on localhost,
and read the answer back through the stored posts. Checking the URL's *text* is not enough: a
public-looking name can resolve to a private address, and a name can answer differently between
the check and the connect (DNS rebinding). So the check lives where the socket is opened:

    GuardedBackend.connect_tcp(host, port)      httpcore calls it for every new connection,
        ├─ resolve once (helper thread,         so for every redirect hop too
        │  bounded by the time left)
        ├─ AddressGuard.check: refuse the host if ANY address is not permitted
        ├─ connect to one of those checked IP literals (the name is never looked up again)
        └─ wrap the socket in _DeadlineStream

Why the deadline lives here too: it must act on every socket operation (a server can trickle its
headers a byte at a time, and httpcore reads headers without asking us), and this backend is
where the sockets are made. `deadline(seconds)` sets it for the running thread.

`PoolTransport` is the small httpx transport over an httpcore pool that lets us plug the backend
in (httpx.HTTPTransport cannot take one). No proxy is ever used: a proxy would do its own
resolution and defeat the guard.

For tests, `AddressGuard.allowed` names exact (address, port) pairs permitted although private:
a guard allowing only the local test server proves a redirect to any other address is refused,
without a packet leaving for it. `resolver` can be replaced to test names without DNS.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import httpcore
import httpx

from aggregator.errors import BlockedAddressError, ResolutionError, ResolutionTimeout

_DEADLINE: ContextVar[float | None] = ContextVar("fetch_deadline", default=None)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]

# Ranges never reachable for a feed even when `is_global` (which varies between Python versions)
# says otherwise; listed so the policy reads in one place.
_BLOCKED_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",
        "::/128", "::1/128", "64:ff9b:1::/48", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
    )
)  # fmt: skip
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public_address(ip: IPAddress) -> bool:
    """True when `ip` is a globally routable unicast address, looking inside v6 wrappers of v4."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        return is_public_address(embedded)
    if any(ip.version == net.version and ip in net for net in _BLOCKED_NETWORKS):
        return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local)


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address a v6 address stands for (mapped, 6to4, NAT64), which is what gets reached."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for host, in its order, without duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class AddressGuard:
    """Which addresses may be connected to, and which resolver turns names into addresses."""

    allow_private: bool = False
    allowed: frozenset[tuple[IPAddress, int]] = frozenset()
    resolver: Resolver = system_resolver

    @classmethod
    def allowing(cls, *pairs: tuple[str, int], resolver: Resolver = system_resolver) -> AddressGuard:
        """A default-deny guard that also permits these exact (address, port) pairs."""
        return cls(allowed=frozenset((ipaddress.ip_address(a), p) for a, p in pairs), resolver=resolver)

    def permits(self, ip: IPAddress, port: int) -> bool:
        return self.allow_private or is_public_address(ip) or (ip, port) in self.allowed

    def check(self, host: str, port: int, answers: Sequence[str]) -> list[IPAddress]:
        """The resolved addresses to connect to; refuses the whole host if any one is not permitted.

        Refusing on any bad record (rather than skipping it) closes the trick of publishing one
        public and one private address and hoping the client picks the second.
        """
        addresses = [_parse_address(host, text) for text in answers]
        if not addresses:
            raise ResolutionError(host, f"{host} has no address")
        for ip in addresses:
            if not self.permits(ip, port):
                raise BlockedAddressError(host, str(ip))
        return addresses


def _parse_address(host: str, text: str) -> IPAddress:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ResolutionError(host, f"{host} resolved to something that is not an address: {text}") from None


class GuardedBackend(httpcore.NetworkBackend):
    """An httpcore backend that resolves and checks before it connects, then connects to the check."""

    def __init__(self, guard: AddressGuard, inner: httpcore.NetworkBackend | None = None) -> None:
        self._guard = guard
        self._inner = inner or httpcore.SyncBackend()
        self._lookups = ThreadPoolExecutor(max_workers=8, thread_name_prefix="resolve")

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        if not 0 < port < 65536:  # the OS would silently wrap it to another port
            raise BlockedAddressError(host, f"port {port}")
        timeout = _capped(timeout, httpcore.ConnectTimeout)
        give_up = None if timeout is None else time.monotonic() + timeout
        addresses = self._guard.check(host, port, self._resolve(host, port, timeout))
        failure: Exception | None = None
        for ip in addresses:  # the IP literal is all the inner backend ever sees: no second lookup
            try:
                stream = self._inner.connect_tcp(str(ip), port, _left(give_up), local_address, socket_options)
                return _DeadlineStream(stream)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                if give_up is not None and time.monotonic() >= give_up:
                    break
        assert failure is not None
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise BlockedAddressError(path, f"unix:{path}")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def close(self) -> None:
        self._lookups.shutdown(wait=False, cancel_futures=True)

    def _resolve(self, host: str, port: int, timeout: float | None) -> Sequence[str]:
        """Resolve in a helper thread, because getaddrinfo itself cannot be given a timeout."""
        try:
            return [str(ipaddress.ip_address(host))]  # a literal needs no lookup (and no thread)
        except ValueError:
            pass
        future = self._lookups.submit(self._guard.resolver, host, port)
        try:
            return future.result(timeout=timeout)
        except FutureTimeout:
            raise ResolutionTimeout(host, f"resolving {host} timed out") from None
        except (OSError, UnicodeError) as exc:
            raise ResolutionError(host, f"cannot resolve {host}: {exc}") from exc


def _left(give_up: float | None) -> float | None:
    return None if give_up is None else max(0.0, give_up - time.monotonic())


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Every socket operation of this thread inside the block stops `seconds` from now.

    A context variable rather than a socket attribute, because pooled connections are reused by
    other fetches (and threads): the deadline belongs to the running fetch, not to the socket.
    """
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def time_left() -> float:
    """Seconds until the running deadline; TimeoutError once it has passed."""
    when = _DEADLINE.get()
    if when is None:
        raise RuntimeError("time_left() called outside a deadline() block")
    left = when - time.monotonic()
    if left <= 0:
        raise TimeoutError("fetch deadline passed")
    return left


def _capped(timeout: float | None, error: type[Exception]) -> float | None:
    """The socket timeout to use now: the caller's, but never past the running deadline."""
    if _DEADLINE.get() is None:
        return timeout
    try:
        left = time_left()
    except TimeoutError:
        raise error("fetch deadline passed") from None
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every read, write and handshake stops at the running deadline.

    This is what makes a server trickling one byte a second (even inside its headers) fail on
    time: each read is given only the time that is left, and none is started after the deadline.
    """

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _capped(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _capped(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        timeout = _capped(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> object:
        return self._inner.get_extra_info(info)


class PoolTransport(httpx.BaseTransport):
    """httpx requests over an httpcore pool whose sockets come from the given backend."""

    def __init__(self, backend: httpcore.NetworkBackend, *, max_connections: int = 100) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=_shared_ssl_context(),
            max_connections=max_connections,
            max_keepalive_connections=max_connections // 4 or 1,
            keepalive_expiry=5.0,
            network_backend=backend,
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,  # type: ignore[arg-type]
            extensions=request.extensions,
        )
        core_response = self._pool.handle_request(core_request)
        return httpx.Response(
            status_code=core_response.status,
            headers=core_response.headers,
            stream=_ResponseStream(core_response),
            extensions=core_response.extensions,
            request=request,
        )

    def close(self) -> None:
        self._pool.close()


@functools.cache
def _shared_ssl_context() -> ssl.SSLContext:
    """Loading the CA bundle takes tens of milliseconds; a context is safe to share between threads."""
    return httpx.create_ssl_context()


class _ResponseStream(httpx.SyncByteStream):
    """Raw body bytes; httpcore errors pass through unchanged for the fetcher to classify once."""

    def __init__(self, response: httpcore.Response) -> None:
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        yield from self._response.iter_stream()

    def close(self) -> None:
        self._response.close()
