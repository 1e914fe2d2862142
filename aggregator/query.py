"""The one query model of posts: what to select (PostFilter) and which page (PostQuery).

The REST API, the filtered feeds and the digests all read posts through this model, built from
request parameters by the functions below. Parameters arrive as a multi-dict (`{name: [values]}`,
what any query string is), so the parser serves any web framework and the command line alike.
Every parameter is declared once in `PARAMETERS`; the OpenAPI description is generated from it.

Pure: no database, no framework. A malformed value raises InvalidQueryError naming the parameter.
Rules shared by all parameters: an empty value counts as absent; repeatable ones also accept
comma-separated lists (`country=KZ,UZ`); a non-repeatable one given twice is an error.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from aggregator.errors import InvalidQueryError

if TYPE_CHECKING:
    from aggregator.tagging import Taxonomy

MAX_ID = 2**63 - 1  # bigint
MAX_Q_LENGTH = 256
INCLUDES = ("text", "evidence")
SORTS = ("published", "relevance")
_LANG = re.compile(r"^[a-z]{2,3}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

Params = Mapping[str, Sequence[str]]


def language_code(value: str | None) -> str | None:
    """A language asked for (`lang=`, an Accept-Language subtag) as posts store it; None: not one."""
    code = (value or "").strip().lower()
    return code if _LANG.match(code) else None


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """The codes a filter may name: the taxonomy, reduced to what parsing needs."""

    countries: frozenset[str]
    topics: frozenset[str]
    regions: Mapping[str, frozenset[str]]  # region code -> its country codes
    # place code -> the place and every place within it; region code -> its places (regions that are
    # part of a country: they match by places, not by their countries)
    places: Mapping[str, frozenset[str]] = field(default_factory=dict)
    region_places: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def from_taxonomy(cls, taxonomy: Taxonomy) -> Vocabulary:
        """From aggregator.tagging.Taxonomy (.countries, .topics: code -> name; .regions: code -> (name, codes))."""
        return cls(
            countries=frozenset(taxonomy.countries),
            topics=frozenset(taxonomy.topics),
            regions={code: frozenset(members) for code, (_name, members) in taxonomy.regions.items()},
            places={code: taxonomy.place_parts(code) for code in taxonomy.places},
            region_places=dict(taxonomy.region_places),
        )


@dataclass(frozen=True, slots=True)
class PostFilter:
    """Which posts: different fields combine with AND; repeated values of countries, places, regions
    and topics combine as `match` says (any: OR, all: AND); sources and languages are always any-of.
    `role="primary"` restricts countries and regions of countries to the posts' primary countries
    (places have no role).

    A region made of whole countries (central-asia) matches posts about any of its countries; a region
    that is part of a country (north-caucasus) has `region_places` and matches only posts that name it
    or one of its places."""

    countries: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    region_countries: tuple[tuple[str, ...], ...] = ()  # one sorted tuple per entry of `regions`
    topics: tuple[str, ...] = ()
    role: str = "any"
    match: str = "any"
    sources: tuple[int, ...] = ()
    langs: tuple[str, ...] = ()
    q: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    places: tuple[str, ...] = ()
    place_parts: tuple[tuple[str, ...], ...] = ()  # one sorted tuple per entry of `places`: it and its parts
    region_places: tuple[tuple[str, ...], ...] = ()  # per entry of `regions`: its places, () for countries


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the previous page ended: the sort key of its last post."""

    sort: str
    published: datetime
    id: int
    rank: float | None = None  # relevance sort only


@dataclass(frozen=True, slots=True)
class PostQuery:
    filter: PostFilter
    sort: str = "published"
    limit: int = 50
    cursor: Cursor | None = None
    include: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class Param:
    """One query parameter as documented: its JSON schema and what it means."""

    name: str
    schema: dict[str, Any]
    description: str
    repeatable: bool = False


_DATE_SCHEMA = {"type": "string", "examples": ["2025-01-31", "2025-01-31T12:00:00Z"]}

PARAMETERS: dict[str, Param] = {p.name: p for p in (
    Param("country", {"type": "string", "examples": ["KZ"]},
          "ISO 3166-1 alpha-2 country code (any case); repeatable.", repeatable=True),
    Param("region", {"type": "string", "examples": ["central-asia"]},
          "Region code (see /api/v1/regions): a region of whole countries (central-asia) finds posts about any "
          "of them; a region that is part of a country (north-caucasus, fergana-valley) finds posts that name "
          "it or one of its places; repeatable.", repeatable=True),
    Param("place", {"type": "string", "examples": ["fergana-valley"]},
          "Place below the country (see /api/v1/places): posts that name it or a place within it "
          "(place=north-caucasus also finds Dagestan); repeatable.", repeatable=True),
    Param("topic", {"type": "string", "examples": ["terrorism"]},
          "Topic code (see /api/v1/topics); repeatable.", repeatable=True),
    Param("role", {"type": "string", "enum": ["any", "primary"], "default": "any"},
          "primary: countries and regions must be what the post is mainly about; any: also mentioned."),
    Param("match", {"type": "string", "enum": ["any", "all"], "default": "any"},
          "How repeated country, region and topic values combine: any of them, or all of them."),
    Param("source", {"type": "integer", "minimum": 1, "examples": [1]},
          "Source id (see /api/v1/sources); repeatable, any of them.", repeatable=True),
    Param("lang", {"type": "string", "examples": ["en"]},
          "Language (ISO 639 primary subtag, lower case); repeatable, any of them.", repeatable=True),
    Param("q", {"type": "string", "maxLength": MAX_Q_LENGTH, "examples": ['"border guards" -drill OR militants']},
          "Full-text search, web-search syntax: \"a phrase\", -excluded, OR."),
    Param("since", _DATE_SCHEMA, "Published at or after this date or date-time (ISO 8601; UTC if no offset)."),
    Param("until", _DATE_SCHEMA, "Published before this date-time; a date means up to the end of that day."),
    Param("sort", {"type": "string", "enum": list(SORTS), "default": "published"},
          "published: newest first; relevance: best full-text match first (needs q)."),
    Param("limit", {"type": "integer", "minimum": 1, "default": 50}, "Posts per page."),
    Param("cursor", {"type": "string"}, "The next_cursor of the previous page (opaque)."),
    Param("include", {"type": "string", "enum": list(INCLUDES)},
          "Extra fields: text (plain text of each post), evidence (why each tag was given); repeatable.",
          repeatable=True),
    Param("group", {"type": "string", "enum": ["story"]},
          "story: one entry per story (one event, many outlets), its first report, updated as the story grows."),
    Param("min_sources", {"type": "integer", "minimum": 1, "default": 1},
          "Stories reported by at least this many sources."),
    Param("days", {"type": "integer", "minimum": 1, "maximum": 366, "default": 90},
          "Number of day buckets in the day facet (the newest days of the matching posts)."),
)}
FILTER_PARAMS = ("country", "region", "place", "topic", "role", "match", "source", "lang", "q", "since", "until")
PAGE_PARAMS = ("sort", "limit", "cursor", "include")
STORY_PARAMS = (*FILTER_PARAMS, "min_sources", "limit", "cursor")


def openapi_parameters(names: Iterable[str], *, max_limit: int) -> list[dict[str, Any]]:
    """OpenAPI `parameters` entries for these query parameters, from the declarations above."""
    result = []
    for name in names:
        param = PARAMETERS[name]
        schema = dict(param.schema)
        if name == "limit":
            schema["maximum"] = max_limit
        if param.repeatable:
            schema = {"type": "array", "items": schema}
        result.append({"name": name, "in": "query", "required": False, "description": param.description,
                       "schema": schema, **({"style": "form", "explode": True} if param.repeatable else {})})
    return result


def multi_dict(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Query-string pairs (repeated names kept in order) as {name: [values]}."""
    result: dict[str, list[str]] = {}
    for name, value in pairs:
        result.setdefault(name, []).append(value)
    return result


def reject_unknown(params: Params, allowed: Iterable[str]) -> None:
    """A misspelt parameter (contry=KZ) would silently widen the result: refuse it instead."""
    known = set(allowed)
    for name in params:
        if name not in known:
            raise InvalidQueryError(name, f"unknown parameter; known: {', '.join(sorted(known))}")


# --- single values ---------------------------------------------------------------------------

def _values(params: Params, name: str) -> list[str]:
    raw = params.get(name, ())
    values = [v.strip() for item in raw for v in (item.split(",") if PARAMETERS[name].repeatable else [item])]
    values = [v for v in values if v]
    for value in values:
        _check_text(value, name)
    if not PARAMETERS[name].repeatable and len(values) > 1:
        raise InvalidQueryError(name, "given more than once")
    return values


def _check_text(value: str, name: str) -> None:
    """Reject what PostgreSQL cannot take as text (NUL, lone surrogates) as a bad parameter, not a crash."""
    if _CONTROL.search(value):
        raise InvalidQueryError(name, "contains control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidQueryError(name, "not valid UTF-8 text") from exc


def _one(params: Params, name: str) -> str | None:
    values = _values(params, name)
    return values[0] if values else None


def _choice(params: Params, name: str, choices: Sequence[str]) -> str:
    value = _one(params, name)
    if value is None:
        return str(PARAMETERS[name].schema["default"])
    if value.lower() not in choices:
        raise InvalidQueryError(name, f"must be one of {', '.join(choices)}, not {value!r}")
    return value.lower()


def parse_int(value: str, name: str, low: int, high: int) -> int:
    if not re.fullmatch(r"[+-]?\d{1,20}", value):
        raise InvalidQueryError(name, f"not an integer: {value[:40]!r}")
    number = int(value)
    if not low <= number <= high:
        raise InvalidQueryError(name, f"must be between {low} and {high}, not {number}")
    return number


def parse_time(value: str, name: str, *, end_of_day: bool = False) -> datetime:
    """ISO 8601 date or date-time; no offset means UTC. A bare date as an upper bound (`end_of_day`)
    means the start of the next day, so `until=2025-01-31` includes all of 31 January."""
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime.combine(day, time(), UTC)
            return moment + timedelta(days=1) if end_of_day else moment
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except (ValueError, OverflowError) as exc:
        raise InvalidQueryError(name, f"not an ISO 8601 date or date-time: {value[:40]!r}") from exc
    try:
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidQueryError(name, f"date-time out of range: {value[:40]!r}") from exc


def normalize_codes(values: Iterable[str], known: Iterable[str], name: str, *, upper: bool) -> tuple[str, ...]:
    """Codes in their canonical case (KZ, terrorism), deduplicated, each checked against `known`."""
    known_set = set(known)
    result: list[str] = []
    for value in values:
        code = value.strip().upper() if upper else value.strip().lower()
        if code not in known_set:
            raise InvalidQueryError(name, f"unknown code {value[:40]!r}")
        if code not in result:
            result.append(code)
    return tuple(result)


def _codes(params: Params, name: str, known: Iterable[str], normal: str) -> tuple[str, ...]:
    return normalize_codes(_values(params, name), known, name, upper=normal == "upper")


# --- the filter and the page -----------------------------------------------------------------

def parse_filter(params: Params, vocabulary: Vocabulary) -> PostFilter:
    """The PostFilter the parameters describe (unknown parameter names are the caller's concern)."""
    regions = _codes(params, "region", vocabulary.regions, "lower")
    langs = tuple(dict.fromkeys(v.lower() for v in _values(params, "lang")))
    for lang in langs:
        if not _LANG.match(lang):
            raise InvalidQueryError("lang", f"not a language subtag like 'en' or 'ru': {lang[:40]!r}")
    q = _one(params, "q")
    if q is not None and len(q) > MAX_Q_LENGTH:
        raise InvalidQueryError("q", f"longer than {MAX_Q_LENGTH} characters")
    since_text, until_text = _one(params, "since"), _one(params, "until")
    since = parse_time(since_text, "since") if since_text else None
    until = parse_time(until_text, "until", end_of_day=True) if until_text else None
    if since and until and since >= until:
        raise InvalidQueryError("until", "must be later than since")
    places = _codes(params, "place", vocabulary.places, "lower")
    region_places = tuple(tuple(sorted(vocabulary.region_places.get(r, ()))) for r in regions)
    return PostFilter(
        countries=_codes(params, "country", vocabulary.countries, "upper"),
        regions=regions,
        region_countries=tuple(tuple(sorted(vocabulary.regions[r])) for r in regions),
        region_places=region_places if any(region_places) else (),
        places=places,
        place_parts=tuple(tuple(sorted(vocabulary.places[p])) for p in places),
        topics=_codes(params, "topic", vocabulary.topics, "lower"),
        role=_choice(params, "role", ("any", "primary")),
        match=_choice(params, "match", ("any", "all")),
        sources=tuple(dict.fromkeys(parse_int(v, "source", 1, MAX_ID) for v in _values(params, "source"))),
        langs=langs,
        q=q,
        since=since,
        until=until,
    )


def parse_post_query(params: Params, vocabulary: Vocabulary, *, max_limit: int, default_limit: int) -> PostQuery:
    """Filter plus paging: sort, limit (1..max_limit), cursor, include."""
    post_filter = parse_filter(params, vocabulary)
    sort = _choice(params, "sort", SORTS)
    if sort == "relevance" and not post_filter.q:
        raise InvalidQueryError("sort", "relevance needs a full-text query (q)")
    limit_text = _one(params, "limit")
    limit = parse_int(limit_text, "limit", 1, max_limit) if limit_text else min(default_limit, max_limit)
    cursor_text = _one(params, "cursor")
    cursor = decode_cursor(cursor_text) if cursor_text else None
    if cursor and cursor.sort != sort:
        raise InvalidQueryError("cursor", f"was made for sort={cursor.sort}, not sort={sort}")
    include = {v.lower() for v in _values(params, "include")}
    for item in include - set(INCLUDES):
        raise InvalidQueryError("include", f"must be among {', '.join(INCLUDES)}, not {item[:40]!r}")
    return PostQuery(post_filter, sort, limit, cursor, frozenset(include))


@dataclass(frozen=True, slots=True)
class StoryQuery:
    """Stories with at least one post matching `filter`, latest activity first."""

    filter: PostFilter
    min_sources: int = 1
    limit: int = 50
    cursor: Cursor | None = None  # sort "stories": the last story's last_seen and id


def parse_story_query(params: Params, vocabulary: Vocabulary, *, max_limit: int, default_limit: int) -> StoryQuery:
    post_filter = parse_filter(params, vocabulary)
    min_text = _one(params, "min_sources")
    limit_text = _one(params, "limit")
    limit = parse_int(limit_text, "limit", 1, max_limit) if limit_text else min(default_limit, max_limit)
    cursor_text = _one(params, "cursor")
    cursor = decode_cursor(cursor_text) if cursor_text else None
    if cursor and cursor.sort != "stories":
        raise InvalidQueryError("cursor", "was not made for a list of stories")
    return StoryQuery(post_filter, parse_int(min_text, "min_sources", 1, 1000) if min_text else 1, limit, cursor)


def parse_group(params: Params) -> str | None:
    """`group=story` (one entry per story) or nothing."""
    value = _one(params, "group")
    if value is None or value == "":
        return None
    if value != "story":
        raise InvalidQueryError("group", f"must be story, not {value[:40]!r}")
    return value


def parse_days(params: Params) -> int:
    value = _one(params, "days")
    return parse_int(value, "days", 1, 366) if value else int(PARAMETERS["days"].schema["default"])


# --- cursors ---------------------------------------------------------------------------------

def encode_cursor(cursor: Cursor) -> str:
    """Opaque to clients (they only send it back), readable to us: base64url of a small JSON list."""
    data = [cursor.sort, cursor.published.isoformat(), cursor.id]
    if cursor.rank is not None:
        data.append(cursor.rank)
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> Cursor:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidQueryError("cursor", "malformed: pass back next_cursor unchanged") from exc
    if not (isinstance(data, list) and len(data) in (3, 4) and data[0] in (*SORTS, "stories")
            and isinstance(data[1], str) and type(data[2]) is int and 1 <= data[2] <= MAX_ID):
        raise InvalidQueryError("cursor", "malformed: pass back next_cursor unchanged")
    rank = data[3] if len(data) == 4 else None
    if (data[0] == "relevance") != (type(rank) is float and math.isfinite(rank)):
        raise InvalidQueryError("cursor", "malformed: pass back next_cursor unchanged")
    try:
        published = datetime.fromisoformat(data[1])
    except ValueError as exc:
        raise InvalidQueryError("cursor", "malformed: pass back next_cursor unchanged") from exc
    if published.tzinfo is None:
        raise InvalidQueryError("cursor", "malformed: pass back next_cursor unchanged")
    return Cursor(data[0], published, data[2], rank)
