"""The query model alone: parameters -> PostFilter / PostQuery, table-driven, no database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aggregator.errors import InvalidQueryError
from aggregator.query import (
    FILTER_PARAMS,
    PAGE_PARAMS,
    PARAMETERS,
    Cursor,
    PostFilter,
    Vocabulary,
    decode_cursor,
    encode_cursor,
    multi_dict,
    openapi_parameters,
    parse_post_query,
    reject_unknown,
)

VOCAB = Vocabulary(
    countries=frozenset({"KZ", "KG", "TJ", "TM", "UZ", "RU", "AF", "GE"}),
    topics=frozenset({"terrorism", "border-security", "migration"}),
    regions={"central-asia": frozenset({"KZ", "KG", "TJ", "TM", "UZ"}), "north-caucasus": frozenset({"RU"})},
)
JAN = datetime(2025, 1, 1, tzinfo=UTC)


def query(text: str, **kw: int):  # type: ignore[no-untyped-def]
    from urllib.parse import parse_qsl

    return parse_post_query(multi_dict(parse_qsl(text, keep_blank_values=True)), VOCAB,
                            max_limit=kw.get("max_limit", 100), default_limit=kw.get("default_limit", 50))


@pytest.mark.parametrize(("text", "expected"), [
    ("", PostFilter()),
    ("country=kz", PostFilter(countries=("KZ",))),
    ("country=KZ&country=uz,KZ", PostFilter(countries=("KZ", "UZ"))),
    ("country=", PostFilter()),
    ("region=central-asia", PostFilter(regions=("central-asia",),
                                       region_countries=(("KG", "KZ", "TJ", "TM", "UZ"),))),
    ("topic=Terrorism&topic=migration", PostFilter(topics=("terrorism", "migration"))),
    ("role=PRIMARY&match=all", PostFilter(role="primary", match="all")),
    ("source=3&source=1,3", PostFilter(sources=(3, 1))),
    ("lang=RU&lang=en", PostFilter(langs=("ru", "en"))),
    ("q=%22border+guards%22+-drill", PostFilter(q='"border guards" -drill')),
    ("since=2025-01-01", PostFilter(since=JAN)),
    ("until=2025-01-01", PostFilter(until=datetime(2025, 1, 2, tzinfo=UTC))),
    ("since=2025-01-01T05:00:00%2B05:00", PostFilter(since=JAN)),
    ("since=2025-01-01T00:00:00", PostFilter(since=JAN)),
    ("since=2025-01-01T00:00:00Z&until=2025-01-01T00:00:01Z",
     PostFilter(since=JAN, until=datetime(2025, 1, 1, 0, 0, 1, tzinfo=UTC))),
])
def test_filter_parameters(text: str, expected: PostFilter) -> None:
    assert query(text).filter == expected


@pytest.mark.parametrize(("text", "parameter", "fragment"), [
    ("country=QQ", "country", "unknown code"),
    ("country=Kazakhstan", "country", "unknown code"),
    ("topic=weather", "topic", "unknown code"),
    ("region=atlantis", "region", "unknown code"),
    ("role=main", "role", "must be one of"),
    ("match=some", "match", "must be one of"),
    ("source=abc", "source", "not an integer"),
    ("source=0", "source", "between"),
    ("source=99999999999999999999", "source", "between"),
    ("lang=english", "lang", "language"),
    ("q=" + "a" * 300, "q", "longer than"),
    ("q=a%00b", "q", "control characters"),
    ("since=2025-13-01", "since", "ISO 8601"),
    ("since=yesterday", "since", "ISO 8601"),
    ("until=9999-12-31", "until", "ISO 8601"),
    ("since=2025-02-01&until=2025-01-01", "until", "later than since"),
    ("sort=best", "sort", "must be one of"),
    ("sort=relevance", "sort", "needs a full-text query"),
    ("limit=0", "limit", "between 1 and 100"),
    ("limit=101", "limit", "between 1 and 100"),
    ("limit=ten", "limit", "not an integer"),
    ("limit=1&limit=2", "limit", "more than once"),
    ("cursor=%%%", "cursor", "malformed"),
    ("cursor=bm90IGpzb24", "cursor", "malformed"),
    ("include=html", "include", "must be among"),
])
def test_invalid_parameters_name_the_parameter(text: str, parameter: str, fragment: str) -> None:
    with pytest.raises(InvalidQueryError) as err:
        query(text)
    assert err.value.parameter == parameter
    assert fragment in err.value.message


def test_page_parameters() -> None:
    q = query("q=border&sort=relevance&limit=7&include=text,evidence")
    assert (q.sort, q.limit, q.include) == ("relevance", 7, frozenset({"text", "evidence"}))
    assert query("").limit == 50
    assert query("", default_limit=500, max_limit=100).limit == 100


@pytest.mark.parametrize("cursor", [
    Cursor("published", datetime(2025, 1, 6, 8, tzinfo=UTC), 42),
    Cursor("relevance", datetime(2025, 1, 6, 8, 0, 0, 123456, tzinfo=UTC), 2**63 - 1, 0.060792707),
])
def test_cursor_round_trip(cursor: Cursor) -> None:
    text = encode_cursor(cursor)
    assert text.isascii() and "=" not in text
    assert decode_cursor(text) == cursor


@pytest.mark.parametrize("data", [
    b'["published", "2025-01-06T08:00:00+00:00"]',
    b'["published", "2025-01-06T08:00:00+00:00", "42"]',
    b'["published", "2025-01-06T08:00:00+00:00", 0]',
    b'["published", "2025-01-06T08:00:00", 42]',
    b'["published", "not a date", 42]',
    b'["relevance", "2025-01-06T08:00:00+00:00", 42]',
    b'["relevance", "2025-01-06T08:00:00+00:00", 42, NaN]',
    b'["oldest", "2025-01-06T08:00:00+00:00", 42]',
    b'{"p": 1}',
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]",
])
def test_tampered_cursors_are_rejected(data: bytes) -> None:
    import base64

    with pytest.raises(InvalidQueryError) as err:
        decode_cursor(base64.urlsafe_b64encode(data).decode())
    assert err.value.parameter == "cursor"


def test_cursor_of_another_sort_is_rejected() -> None:
    cursor = encode_cursor(Cursor("published", JAN, 1))
    with pytest.raises(InvalidQueryError, match="sort=published"):
        query(f"q=border&sort=relevance&cursor={cursor}")


def test_unknown_parameters_are_refused_not_ignored() -> None:
    reject_unknown({"country": ["KZ"]}, FILTER_PARAMS)
    with pytest.raises(InvalidQueryError) as err:
        reject_unknown({"contry": ["KZ"]}, FILTER_PARAMS)
    assert err.value.parameter == "contry"


def test_openapi_parameters_come_from_the_declarations() -> None:
    documented = openapi_parameters(FILTER_PARAMS + PAGE_PARAMS, max_limit=77)
    assert [p["name"] for p in documented] == list(FILTER_PARAMS + PAGE_PARAMS)
    limit = next(p for p in documented if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 77
    country = next(p for p in documented if p["name"] == "country")
    assert country["schema"]["type"] == "array" and PARAMETERS["country"].repeatable
    assert all(p["description"] for p in documented)
