"""The error-kind table: every way a poll can fail, the code stored for it, and what it means for
the source. The codes are stored data (sources.last_error_kind, fetch_log.error_kind) that people
and scripts read, so this table pins them: a change here is a change of the stored format."""

from __future__ import annotations

import pytest

from aggregator.errors import (
    ErrorKind,
    FetchError,
    InvalidInputError,
    InvalidQueryError,
    InvalidTokenError,
    ParseError,
    SourceError,
)

# kind, stored code (status 404 for the HTTP kinds), temporary, counts toward disabling
TABLE = [
    (ErrorKind.TIMEOUT, "timeout", True, False),
    (ErrorKind.DNS, "dns", True, False),
    (ErrorKind.CONNECTION, "connection", True, False),
    (ErrorKind.PROTOCOL, "protocol", True, False),
    (ErrorKind.DECODING, "decoding", True, False),
    (ErrorKind.TLS_HANDSHAKE, "tls", True, False),
    (ErrorKind.TLS_CERTIFICATE, "tls", False, True),
    (ErrorKind.HTTP_TEMPORARY, "http_404", True, False),
    (ErrorKind.HTTP_PERMANENT, "http_404", False, True),
    (ErrorKind.INVALID_URL, "invalid_url", False, True),
    (ErrorKind.BLOCKED_ADDRESS, "blocked_address", False, True),
    (ErrorKind.TOO_MANY_REDIRECTS, "too_many_redirects", False, True),
    (ErrorKind.TOO_LARGE, "too_large", False, True),
    (ErrorKind.UNSUPPORTED_ENCODING, "unsupported_encoding", False, True),
    (ErrorKind.NOT_A_FEED, "not_a_feed", False, True),
    (ErrorKind.MALFORMED, "malformed", True, False),
    (ErrorKind.PARSER_DIED, "parse_error", True, False),
    (ErrorKind.INTERNAL, "internal", True, False),
    (ErrorKind.STORAGE, "storage", True, False),
]


def test_the_table_lists_every_kind() -> None:
    assert [row[0] for row in TABLE] == list(ErrorKind)


@pytest.mark.parametrize(("kind", "code", "temporary", "disables"), TABLE, ids=lambda v: getattr(v, "name", None))
def test_each_kind(kind: ErrorKind, code: str, temporary: bool, disables: bool) -> None:
    assert (kind.code_for(404), kind.temporary, kind.disables) == (code, temporary, disables)
    assert kind.words and kind.words == kind.words.strip() and not kind.words.endswith(".")
    error = SourceError("https://example.org/feed", "it failed", kind=kind, status=404)
    assert (error.code, error.temporary, error.disables, str(error)) == (code, temporary, disables,
                                                                          f"{code}: it failed")


@pytest.mark.parametrize("kind", [ErrorKind.HTTP_TEMPORARY, ErrorKind.HTTP_PERMANENT])
def test_an_http_kind_needs_its_status(kind: ErrorKind) -> None:
    with pytest.raises(ValueError, match="status"):
        FetchError("https://example.org/feed", "HTTP error", kind=kind)


RESULTS = [200, 203, 204, 304]
PERMANENT = [300, 400, 401, 403, 404, 405, 406, 410, 418, 422, 451]
TEMPORARY = [408, 425, 429, 500, 502, 503, 504, 599]


@pytest.mark.parametrize(
    ("status", "expected"),
    [(s, None) for s in RESULTS]
    + [(s, (f"http_{s}", False)) for s in PERMANENT]
    + [(s, (f"http_{s}", True)) for s in TEMPORARY],
)
def test_http_statuses(status: int, expected: tuple[str, bool] | None) -> None:
    kind = ErrorKind.for_status(status)
    assert (None if kind is None else (kind.code_for(status), kind.temporary)) == expected


def test_kinds_a_status_never_gives_need_no_status() -> None:
    for kind in ErrorKind:
        if kind not in (ErrorKind.HTTP_TEMPORARY, ErrorKind.HTTP_PERMANENT):
            assert kind.code_for() == kind.code_for(500) == kind.code


def test_a_parse_error_takes_its_meaning_from_its_kind() -> None:
    page = ParseError("https://example.org/", "an HTML page, not a feed", kind=ErrorKind.NOT_A_FEED)
    broken = ParseError("https://example.org/feed", "cut short", kind=ErrorKind.MALFORMED)
    assert (page.code, page.temporary, page.disables) == ("not_a_feed", False, True)
    assert (broken.code, broken.temporary, broken.disables) == ("malformed", True, False)


@pytest.mark.parametrize(
    ("error", "parameter"),
    [
        (InvalidQueryError("country", "unknown code 'QQ'"), "country"),
        (InvalidTokenError("this link has expired"), "token"),
        (InvalidInputError("email", "no @-sign"), "email"),
    ],
)
def test_bad_input_shares_one_base_that_names_the_value(error: InvalidInputError, parameter: str) -> None:
    assert isinstance(error, InvalidInputError)
    assert error.parameter == parameter and str(error).startswith(f"{parameter}: ")
