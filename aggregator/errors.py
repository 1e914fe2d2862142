"""The one exception tree of the aggregator, and the one table of the ways a poll can fail.

Lower-level errors (httpx, feedparser, psycopg, smtplib) are mapped into this tree once, at the
module where they enter; everything above that boundary only knows these classes::

    AggregatorError
     ├── ConfigError              bad settings or config files
     ├── SourceError              a poll of a feed failed (carries the feed URL and an ErrorKind)
     │    ├── FetchError          network/HTTP failure (also carries the status and Retry-After)
     │    └── ParseError          the body is not a usable feed
     ├── GuardError               the fetch's address guard refused a connection (mapped to a FetchError)
     │    ├── BlockedAddressError the host resolves to an address feeds may not come from
     │    ├── ResolutionError     the name did not resolve
     │    └── ResolutionTimeout   the resolver did not answer in time
     ├── LeaseLost                another worker took a feed over while we polled it: results dropped
     ├── StorageError             the database failed or is in an unexpected state
     │    ├── DatabaseUnavailable unreachable for now (restart, network): retry later
     │    └── SchemaVersionError  the database was migrated by newer code
     ├── NotFoundError            a named thing (feed, post) does not exist
     ├── InvalidInputError        a value from outside is unusable (carries its name: parameter, field, option)
     │    ├── InvalidQueryError   a query parameter (API, filtered feeds, saved feeds, digest filters)
     │    └── InvalidTokenError   a signed link is malformed, forged or expired, or names nothing
     ├── RateLimitError           a client asked too often (carries the seconds to wait)
     └── DeliveryError            an email could not be delivered (carries the recipient)

`ErrorKind` below is the table of why a poll failed: the code stored on the source and in the
fetch log, whether the failure is temporary, and whether it counts toward disabling the source
(AGGREGATOR_DISABLE_AFTER_FAILURES in a row). Fetch, parse, pipeline and the next-poll decisions
read these columns; none of them decides on its own.

A 304 Not Modified is a result, not an error.
"""

from __future__ import annotations

import math
from datetime import datetime
from enum import Enum, unique
from typing import Any


class AggregatorError(Exception):
    """Base of every error the aggregator raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        """Errors cross process boundaries (the parse pool sends them back pickled), and default
        pickling calls the constructor with `args` alone, which fails for the keyword-only ones and
        breaks the whole pool. Rebuild from the attributes instead."""
        return (_rebuild, (type(self), self.args, self.__dict__))


def first_line(exc: BaseException) -> str:
    """An error for a one-line log event: driver messages run over several lines (DETAIL, HINT)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _rebuild(cls: type[AggregatorError], args: tuple[Any, ...], state: dict[str, Any]) -> AggregatorError:
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


TEMPORARY_HTTP_CLIENT_ERRORS = frozenset({408, 425, 429})


@unique
class ErrorKind(Enum):
    """Why a poll failed. `code` is what sources.last_error_kind and fetch_log.error_kind hold
    (stable: people and scripts read it); two rows may share a code when the same symptom has two
    causes that must be treated apart (a TLS handshake vs an untrusted certificate).

    temporary: the failure is expected to pass by itself.
    disables:  it counts toward AGGREGATOR_DISABLE_AFTER_FAILURES; a success starts the count again.
    words:     what it means, for the person reading why a source was disabled.
    """

    code: str
    temporary: bool
    disables: bool
    words: str

    # NAME =               (code,                   temporary, disables, words)
    # -- fetch: the network and HTTP (ingest/fetch.py, ingest/netguard.py) -------------------------
    TIMEOUT =              ("timeout",              True,  False, "the server did not answer in time")
    DNS =                  ("dns",                  True,  False, "the host name did not resolve")
    CONNECTION =           ("connection",           True,  False, "no connection could be made to the server")
    PROTOCOL =             ("protocol",             True,  False, "the server broke off or garbled its answer")
    DECODING =             ("decoding",             True,  False, "the compressed body could not be decoded")
    TLS_HANDSHAKE =        ("tls",                  True,  False, "the TLS handshake failed")
    TLS_CERTIFICATE =      ("tls",                  False, True,  "the server's TLS certificate is not trusted")
    HTTP_TEMPORARY =       ("http_{status}",        True,  False, "the server answered with an HTTP error")
    HTTP_PERMANENT =       ("http_{status}",        False, True,  "the server refuses the feed with an HTTP error")
    INVALID_URL =          ("invalid_url",          False, True,  "the address is not a valid http(s) URL")
    BLOCKED_ADDRESS =      ("blocked_address",      False, True,  "the host is not at a public address")
    TOO_MANY_REDIRECTS =   ("too_many_redirects",   False, True,  "the address redirects in a loop or too often")
    TOO_LARGE =            ("too_large",            False, True,  "the body is over AGGREGATOR_MAX_BODY_BYTES")
    UNSUPPORTED_ENCODING = ("unsupported_encoding", False, True,  "the body is compressed in a way we cannot read")
    # -- parse: the body (ingest/parse.py, ingest/jsonfeed.py, ingest/parse_pool.py) ---------------
    NOT_A_FEED =           ("not_a_feed",           False, True,  "what the address serves is not a feed")
    MALFORMED =            ("malformed",            True,  False, "the feed is broken XML or JSON")
    PARSER_DIED =          ("parse_error",          True,  False, "the parsing process died on the body")
    # -- the poll itself (ingest/pipeline.py) ------------------------------------------------------
    INTERNAL =             ("internal",             True,  False, "an unexpected error in the aggregator")
    STORAGE =              ("storage",              True,  False, "the database failed while storing the poll")

    def __init__(self, code: str, temporary: bool, disables: bool, words: str) -> None:
        self.code = code
        self.temporary = temporary
        self.disables = disables
        self.words = words

    @classmethod
    def for_status(cls, status: int) -> ErrorKind | None:
        """The kind of an HTTP status that is a failure; None for a result (2xx, 304). Servers
        that are busy or down (408, 425, 429, 5xx) are temporary; every other refusal counts."""
        if 200 <= status < 300 or status == 304:
            return None
        if status in TEMPORARY_HTTP_CLIENT_ERRORS or status >= 500:
            return cls.HTTP_TEMPORARY
        return cls.HTTP_PERMANENT

    def code_for(self, status: int | None = None) -> str:
        """The stored code of this kind; the HTTP kinds carry the status (http_404)."""
        if "{status}" not in self.code:
            return self.code
        if status is None:
            raise ValueError(f"{self.name} needs the HTTP status")
        return self.code.format(status=status)


class ConfigError(AggregatorError):
    pass


class SourceError(AggregatorError):
    """A poll of a feed failed. `kind` is its row in the ErrorKind table; `code` is what is stored."""

    def __init__(self, url: str, message: str, *, kind: ErrorKind, status: int | None = None):
        super().__init__(message)
        self.url = url
        self.message = message
        self.kind = kind
        self.status = status
        self.code = kind.code_for(status)

    @property
    def temporary(self) -> bool:
        return self.kind.temporary

    @property
    def disables(self) -> bool:
        """Counts toward disabling the source (AGGREGATOR_DISABLE_AFTER_FAILURES in a row)."""
        return self.kind.disables

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class FetchError(SourceError):
    """An HTTP or network failure. `retry_after` is the earliest time the server allows a retry."""

    def __init__(
        self,
        url: str,
        message: str,
        *,
        kind: ErrorKind,
        status: int | None = None,
        retry_after: datetime | None = None,
    ):
        super().__init__(url, message, kind=kind, status=status)
        self.retry_after = retry_after


class ParseError(SourceError):
    """The body was fetched but is not a feed we can read (HTML page, broken XML with no entries)."""


class GuardError(AggregatorError):
    """Raised inside the fetch's network backend (ingest/netguard.py), where httpcore opens
    sockets; the fetcher maps it to a FetchError of its `kind`."""

    kind: ErrorKind = ErrorKind.CONNECTION

    def __init__(self, host: str, message: str):
        super().__init__(message)
        self.host = host


class BlockedAddressError(GuardError):
    """The host resolves to an address a feed may not be fetched from."""

    kind = ErrorKind.BLOCKED_ADDRESS

    def __init__(self, host: str, address: str):
        via = "" if host == address else f" resolves to {address}, which"
        super().__init__(host, f"{host}{via} is not a public address")
        self.address = address


class ResolutionError(GuardError):
    """The name did not resolve (NXDOMAIN, no address, resolver failure)."""

    kind = ErrorKind.DNS


class ResolutionTimeout(GuardError):
    """The resolver did not answer within the time left for the connection."""

    kind = ErrorKind.TIMEOUT


class LeaseLost(AggregatorError):
    """Another worker took this feed over after our lease expired; our results are discarded."""


class StorageError(AggregatorError):
    pass


class DatabaseUnavailable(StorageError):
    """The database cannot be reached now (restarting, network, no free connection in time): worth
    retrying, unlike a failed statement."""


class SchemaVersionError(StorageError):
    """The database schema is newer than this code: refuse to run rather than corrupt it."""


class NotFoundError(AggregatorError):
    def __init__(self, what: str, key: object):
        super().__init__(f"{what} not found: {key}")
        self.what = what
        self.key = key


class InvalidInputError(AggregatorError):
    """A value from outside (an API field, a form, a CLI option) is unusable; `parameter` names it
    as the caller spelled it, so the API can point at it. Every subclass is a 400 in the API."""

    def __init__(self, parameter: str, message: str):
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


class InvalidQueryError(InvalidInputError):
    """A query parameter: of the API, a filtered feed, a saved feed, or a digest's filter."""


class InvalidTokenError(InvalidInputError):
    """A signed link (confirm, manage, unsubscribe) that is malformed, forged or expired, or whose
    subscription is gone: the pages answer it with "this link does not work", not a form error."""

    def __init__(self, message: str):
        super().__init__("token", message)


class RateLimitError(AggregatorError):
    """`retry_after` is whole seconds, rounded up: a client retrying after a rounded-down wait
    would be refused again."""

    def __init__(self, what: str, retry_after: float):
        self.what = what
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(f"too many {what}; retry in {self.retry_after} s")


class DeliveryError(AggregatorError):
    def __init__(self, recipient: str, message: str, *, temporary: bool = True):
        super().__init__(f"{recipient}: {message}")
        self.recipient = recipient
        self.temporary = temporary
