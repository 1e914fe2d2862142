"""The network edge: one conditional GET of a feed, bounded in time, size and destination.

Everything the network can throw at us is turned into a `FetchResult` (200 or 304) or a
`FetchError` with a short `kind` right here, once; nothing from httpx, httpcore, ssl or socket
escapes `Fetcher.fetch`. The pieces, in the order a fetch meets them:

    per-host slot      at most `per_host_concurrency` fetches in flight to one host
    redirect loop      followed by hand, so each hop's connection goes through the address guard
    deadline           one monotonic deadline for the whole call, enforced on every socket
                       operation (connect, TLS, each read and write), so a server that trickles a
                       byte a second fails at the deadline even in the middle of its headers
    size cap           on the decompressed body, while streaming: a gzip bomb costs at most the cap
    classification     HTTP statuses and exceptions -> an ErrorKind of aggregator.errors, whose
                       table says what each one means for the source

The address guard and the per-socket deadline live in aggregator.ingest.netguard, in the network backend
every connection is made by; this module decides what a response means.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import ssl
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType

import httpcore
import httpx

from aggregator.config import Settings
from aggregator.errors import ErrorKind, FetchError, GuardError
from aggregator.ingest.httpdates import freshness_seconds, parse_retry_after
from aggregator.ingest.models import FetchResult, Validators
from aggregator.ingest.netguard import AddressGuard, GuardedBackend, PoolTransport, deadline, time_left

ACCEPT = ", ".join(
    [
        "application/atom+xml",
        "application/rss+xml",
        "application/feed+json",
        "application/xml;q=0.9",
        "text/xml;q=0.9",
        "*/*;q=0.8",
    ]
)
# Only what _Decoder can inflate under the size cap; br would need a capped brotli decoder.
ACCEPT_ENCODING = "gzip, deflate"

REDIRECTS = frozenset({301, 302, 303, 307, 308})
PERMANENT_REDIRECTS = frozenset({301, 308})

# What may reach the resolver: IDNA-encoded names and IP literals; never spaces or controls.
_HOSTNAME = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?")


class Fetcher:
    """Fetches feeds; one instance per process, shared by the worker threads.

    The per-host limit and the connection pool belong to the instance, so a second Fetcher in the
    same process would double the load a host sees.
    """

    def __init__(self, settings: Settings, *, guard: AddressGuard | None = None) -> None:
        self._settings = settings
        self._backend = GuardedBackend(guard or AddressGuard(allow_private=settings.allow_private_networks))
        self._transport = PoolTransport(self._backend)
        self._slots = _HostSlots(settings.per_host_concurrency)

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()
        self._backend.close()

    def fetch(self, url: str, validators: Validators = Validators()) -> FetchResult:  # noqa: B008
        """A 200 or 304 as a result; anything else as a FetchError (and only as a FetchError).

        `fetch_deadline` bounds the whole call, including waiting for a free slot to the host, so
        a worker thread is never held longer than that whatever the servers do.
        """
        started = time.monotonic()
        try:
            with deadline(self._settings.fetch_deadline):
                return self._follow(url, validators, started)
        except FetchError:
            raise
        except _LOWER_LEVEL_ERRORS as exc:
            if time.monotonic() - started >= self._settings.fetch_deadline:
                # whatever broke once the deadline had passed (a connect given no time left) broke *because* of it
                raise FetchError(url, f"deadline of {self._settings.fetch_deadline:g}s passed: {exc}",
                                 kind=ErrorKind.TIMEOUT) from exc
            raise exception_to_fetch_error(url, exc) from exc

    def _follow(self, url: str, validators: Validators, started: float) -> FetchResult:
        target = _http_url(url, url)
        chain = _RedirectChain(url, self._settings.max_redirects, {str(target)})
        while True:
            with self._slots.hold(target.host), self._send(target, validators) as response:
                location = response.headers.get("location")
                if response.status_code not in REDIRECTS or not location:
                    return self._finish(url, target, response, validators, chain, started)
                target = chain.follow(target, location, response.status_code)

    @contextmanager
    def _send(self, target: httpx.URL, validators: Validators) -> Iterator[httpx.Response]:
        left = time_left()
        timeouts = {"connect": min(self._settings.connect_timeout, left), "read": left, "write": left}
        request = httpx.Request(
            "GET", target, headers=self._headers(validators), extensions={"timeout": timeouts | {"pool": left}}
        )
        response = self._transport.handle_request(request)
        try:
            yield response
        finally:
            response.close()

    def _headers(self, validators: Validators) -> dict[str, str | bytes]:
        headers: dict[str, str | bytes] = {
            "User-Agent": self._settings.user_agent,
            "Accept": ACCEPT,
            "Accept-Encoding": ACCEPT_ENCODING,
        }
        if validators.etag:  # verbatim: a weak W/"..." tag stays weak, quotes stay quotes
            headers["If-None-Match"] = validators.etag.encode()
        if validators.last_modified:
            headers["If-Modified-Since"] = validators.last_modified.encode()
        return headers

    def _finish(
        self,
        url: str,
        target: httpx.URL,
        response: httpx.Response,
        validators: Validators,
        chain: _RedirectChain,
        started: float,
    ) -> FetchResult:
        now = datetime.now(UTC)
        headers = response.headers
        retry_after = parse_retry_after(headers.get("retry-after"), now)
        _raise_for_status(url, target, response.status_code, retry_after)
        body, body_hash, new = self._content(url, response, validators)
        return FetchResult(
            url=url,
            final_url=str(target),
            status=response.status_code,
            body=body,
            body_hash=body_hash,
            unchanged=response.status_code == 304 or body_hash == validators.body_hash,
            validators=new,
            content_type=headers.get("content-type"),
            permanent_url=chain.permanent_url(target),
            max_age=freshness_seconds(headers.get("cache-control"), headers.get("expires"), headers.get("date"), now),
            retry_after=retry_after,
            elapsed=time.monotonic() - started,
        )

    def _content(
        self, url: str, response: httpx.Response, validators: Validators
    ) -> tuple[bytes, str | None, Validators]:
        """Body, body hash and the validators to store next; a 304 keeps what the 200 gave."""
        headers = response.headers
        if response.status_code == 304:
            etag = headers.get("etag") or validators.etag
            last_modified = headers.get("last-modified") or validators.last_modified
            return b"", validators.body_hash, Validators(etag, last_modified, validators.body_hash)
        body = _read_body(url, response, self._settings.max_body_bytes)
        body_hash = hashlib.sha256(body).hexdigest()
        return body, body_hash, Validators(headers.get("etag"), headers.get("last-modified"), body_hash)


class _RedirectChain:
    """The hops so far: counts them, spots loops early, and knows whether all were permanent."""

    def __init__(self, url: str, limit: int, seen: set[str]) -> None:
        self._url = url
        self._limit = limit
        self._seen = seen
        self._hops = 0
        self._permanent = True

    def follow(self, current: httpx.URL, location: str, status: int) -> httpx.URL:
        target = _http_url(self._url, location, base=current)
        self._hops += 1
        self._permanent = self._permanent and status in PERMANENT_REDIRECTS
        if str(target) in self._seen:
            raise _error(self._url, ErrorKind.TOO_MANY_REDIRECTS, f"redirect loop back to {target}")
        if self._hops > self._limit:
            raise _error(self._url, ErrorKind.TOO_MANY_REDIRECTS, f"more than {self._limit} redirects")
        self._seen.add(str(target))
        return target

    def permanent_url(self, final: httpx.URL) -> str | None:
        return str(final) if self._hops and self._permanent else None


def _http_url(url: str, text: str, base: httpx.URL | None = None) -> httpx.URL:
    """An absolute http(s) URL with a host, or a permanent invalid_url error."""
    try:
        parsed = base.join(text) if base is not None else httpx.URL(text)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise _error(url, ErrorKind.INVALID_URL, f"malformed URL {text!r}: {exc}") from exc
    if parsed.scheme not in ("http", "https"):
        raise _error(url, ErrorKind.INVALID_URL, f"unsupported scheme in {text!r}")
    if not parsed.host:
        raise _error(url, ErrorKind.INVALID_URL, f"no host in {text!r}")
    if not _valid_host(parsed.raw_host.decode("ascii", "replace")):
        raise _error(url, ErrorKind.INVALID_URL, f"malformed host in {text!r}")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise _error(url, ErrorKind.INVALID_URL, f"port out of range in {text!r}")
    return parsed.copy_with(fragment=None)


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return _HOSTNAME.fullmatch(host) is not None
    return True


def _error(url: str, kind: ErrorKind, message: str) -> FetchError:
    return FetchError(url, message, kind=kind)


class _HostSlots:
    """A semaphore per host, made on first use, so one slow site cannot hog every worker."""

    def __init__(self, limit: int) -> None:
        self._limit = max(1, limit)
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}

    @contextmanager
    def hold(self, host: str) -> Iterator[None]:
        with self._lock:
            slot = self._slots.setdefault(host, threading.BoundedSemaphore(self._limit))
        if not slot.acquire(timeout=time_left()):
            raise TimeoutError(f"no free slot for {host} before the fetch deadline")
        try:
            yield
        finally:
            slot.release()


def _read_body(url: str, response: httpx.Response, cap: int) -> bytes:
    declared = response.headers.get("content-length", "").strip()
    if declared.isdigit() and (len(declared) > 18 or int(declared) > cap):
        raise _error(url, ErrorKind.TOO_LARGE, f"Content-Length {declared} is over the {cap}-byte cap")
    decoder = _Decoder(url, response.headers.get("content-encoding"), cap)
    body = bytearray()
    for chunk in response.iter_raw():
        body += decoder.decode(chunk, room=cap - len(body))
    return bytes(body)


class _Decoder:
    """Inflates gzip/deflate with a hard output limit, so memory never exceeds the cap."""

    def __init__(self, url: str, content_encoding: str | None, cap: int) -> None:
        self._url = url
        self._cap = cap
        codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
            raise _error(url, ErrorKind.UNSUPPORTED_ENCODING, f"cannot decode Content-Encoding {content_encoding!r}")
        self._deflate = codings == ["deflate"]
        self._first = True
        self._zlib = None if not codings else zlib.decompressobj(zlib.MAX_WBITS | (0 if self._deflate else 16))

    def decode(self, data: bytes, room: int) -> bytes:
        out = data if self._zlib is None else self._inflate(data, room)
        if len(out) > room:
            raise _error(self._url, ErrorKind.TOO_LARGE, f"body is over the {self._cap}-byte cap")
        return out

    def _inflate(self, data: bytes, room: int) -> bytes:
        assert self._zlib is not None
        first, self._first = self._first, False
        try:
            return self._zlib.decompress(data, room + 1)  # room + 1: enough to know the cap is passed
        except zlib.error:
            if not (first and self._deflate):
                raise
        self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)  # "deflate" sent raw, without zlib header
        return self._zlib.decompress(data, room + 1)


def _raise_for_status(url: str, target: httpx.URL, status: int, retry_after: datetime | None) -> None:
    kind = ErrorKind.for_status(status)
    if kind is not None:
        raise FetchError(url, f"HTTP {status} from {target}", kind=kind, status=status, retry_after=retry_after)


_LOWER_LEVEL_ERRORS = (
    GuardError,
    httpx.HTTPError,
    httpx.InvalidURL,
    httpx.StreamError,
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ProxyError,
    httpcore.ConnectionNotAvailable,
    OSError,
    zlib.error,
)
_TIMEOUTS = (httpcore.TimeoutException, httpx.TimeoutException, TimeoutError)
_INVALID_URL = (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol, httpx.InvalidURL)
_PROTOCOL = (httpcore.ProtocolError, httpx.ProtocolError)


def exception_to_fetch_error(url: str, exc: BaseException) -> FetchError:
    """The one mapping from lower-level exceptions to FetchError kinds."""
    message = str(exc) if isinstance(exc, GuardError) else f"{type(exc).__name__}: {exc}"
    return FetchError(url, message, kind=_exception_kind(exc))


def _exception_kind(exc: BaseException) -> ErrorKind:
    if isinstance(exc, GuardError):
        return exc.kind
    if isinstance(exc, _TIMEOUTS):
        return ErrorKind.TIMEOUT
    tls = _ssl_cause(exc)
    if tls is not None:  # a bad certificate will not fix itself; a failed handshake might
        return ErrorKind.TLS_CERTIFICATE if isinstance(tls, ssl.SSLCertVerificationError) else ErrorKind.TLS_HANDSHAKE
    if isinstance(exc, _INVALID_URL):
        return ErrorKind.INVALID_URL
    if isinstance(exc, zlib.error):
        return ErrorKind.DECODING
    if isinstance(exc, _PROTOCOL):
        return ErrorKind.PROTOCOL
    return ErrorKind.CONNECTION


def _ssl_cause(exc: BaseException | None) -> ssl.SSLError | None:
    """The ssl error behind an httpcore error, which wraps it with `raise ... from`."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, ssl.SSLError):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None
