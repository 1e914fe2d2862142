"""The one exception tree of the aggregator.

Lower-level errors (httpx, feedparser, psycopg, smtplib) are mapped into this tree once, at the
module where they enter; everything above that boundary only knows these classes::

    AggregatorError
     ├── ConfigError            bad settings or config files
     ├── SourceError            a feed source failed (carries the feed URL)
     │    ├── FetchError        network/HTTP failure; .kind is a short code, .temporary says retry or not
     │    └── ParseError        the body is not a usable feed
     ├── StorageError           the database failed or is in an unexpected state
     │    ├── DatabaseUnavailable unreachable for now (restart, network): retry later
     │    └── SchemaVersionError the database was migrated by newer code
     ├── NotFoundError          a named thing (feed, post) does not exist
     ├── InvalidQueryError      a user query is malformed (carries the parameter name)
     ├── RateLimitError         a client asked too often (carries the seconds to wait)
     └── DeliveryError          an email could not be delivered (carries the recipient)

A 304 Not Modified is a result, not an error.
"""

from __future__ import annotations

import math
from datetime import datetime
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


class ConfigError(AggregatorError):
    pass


class SourceError(AggregatorError):
    """A feed could not be updated; `kind` is a short stable code stored on the source."""

    kind: str = "source_error"
    temporary: bool = True

    def __init__(self, url: str, message: str, *, kind: str | None = None, temporary: bool | None = None):
        super().__init__(message)
        self.url = url
        self.message = message
        if kind is not None:
            self.kind = kind
        if temporary is not None:
            self.temporary = temporary

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


class FetchError(SourceError):
    """An HTTP or network failure. `retry_after` is the earliest time the server allows a retry."""

    kind = "fetch_error"

    def __init__(
        self,
        url: str,
        message: str,
        *,
        kind: str,
        temporary: bool,
        status: int | None = None,
        retry_after: datetime | None = None,
    ):
        super().__init__(url, message, kind=kind, temporary=temporary)
        self.status = status
        self.retry_after = retry_after


class ParseError(SourceError):
    """The body was fetched but is not a feed we can read (HTML page, broken XML with no entries)."""

    kind = "parse_error"
    temporary = True


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


class InvalidQueryError(AggregatorError):
    def __init__(self, parameter: str, message: str):
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


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
