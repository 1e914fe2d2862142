"""The one exception tree of the aggregator.

Lower-level errors (httpx, feedparser, psycopg, smtplib) are mapped into this tree once, at the
module where they enter; everything above that boundary only knows these classes::

    AggregatorError
     ├── ConfigError            bad settings or config files
     ├── SourceError            a feed source failed (carries the feed URL)
     │    ├── FetchError        network/HTTP failure; .kind is a short code, .temporary says retry or not
     │    └── ParseError        the body is not a usable feed
     ├── StorageError           the database failed or is in an unexpected state
     │    └── SchemaVersionError the database was migrated by newer code
     ├── NotFoundError          a named thing (feed, post) does not exist
     ├── InvalidQueryError      a user query is malformed (carries the parameter name)
     └── DeliveryError          an email could not be delivered (carries the recipient)

A 304 Not Modified is a result, not an error.
"""

from __future__ import annotations

from datetime import datetime


class AggregatorError(Exception):
    """Base of every error the aggregator raises on purpose."""


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


class DeliveryError(AggregatorError):
    def __init__(self, recipient: str, message: str, *, temporary: bool = True):
        super().__init__(f"{recipient}: {message}")
        self.recipient = recipient
        self.temporary = temporary
