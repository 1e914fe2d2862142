"""A filter in words and as a canonical URL: feed titles, self links, cache keys, discovery links.

`canonical_query` is the one spelling of a filter: parameters sorted by name, values normalized and
sorted, defaults left out. Two URLs that select the same posts (`country=kz&topic=terrorism`,
`topic=terrorism&country=KZ`) get one self link, one cache entry and one saved-feed query.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlencode

from aggregator.feeds_out.model import MEDIA_TYPES, rfc3339
from aggregator.query import PostFilter

SEPARATOR = " · "
FEED_PATHS = {fmt: f"/feeds/{fmt}" for fmt in MEDIA_TYPES}


@dataclass(frozen=True, slots=True)
class Names:
    """Display names of the codes a filter may hold (a code without a name is shown as itself)."""

    countries: Mapping[str, str] = field(default_factory=dict)
    regions: Mapping[str, str] = field(default_factory=dict)
    topics: Mapping[str, str] = field(default_factory=dict)
    places: Mapping[str, str] = field(default_factory=dict)
    sources: Mapping[int, str] = field(default_factory=dict)
    languages: Mapping[str, str] = field(default_factory=dict)


def _moment(value: datetime) -> str:
    return rfc3339(value)


def canonical_params(f: PostFilter, limit: int | None = None) -> list[tuple[str, str]]:
    """(name, value) pairs sorted by name; lists comma-joined in sorted order; defaults omitted."""
    pairs: dict[str, str] = {}
    for name, values in (("country", f.countries), ("region", f.regions), ("place", f.places), ("topic", f.topics),
                         ("lang", f.langs)):
        if values:
            pairs[name] = ",".join(sorted(values))
    if f.sources:
        pairs["source"] = ",".join(str(s) for s in sorted(f.sources))
    if f.role != "any":
        pairs["role"] = f.role
    if f.match != "any":
        pairs["match"] = f.match
    if f.q:
        pairs["q"] = f.q
    if f.since:
        pairs["since"] = _moment(f.since)
    if f.until:
        pairs["until"] = _moment(f.until)
    if limit is not None:
        pairs["limit"] = str(limit)
    return sorted(pairs.items())


def canonical_query(f: PostFilter, limit: int | None = None) -> str:
    return urlencode(canonical_params(f, limit))


def with_query(url: str, query: str) -> str:
    return f"{url}?{query}" if query else url


def feed_links(base_url: str, f: PostFilter, limit: int | None = None) -> dict[str, str]:
    """{atom, rss, json: URL} of the feeds of this filter: what the API's post list can point to."""
    query = canonical_query(f, limit)
    base = base_url.rstrip("/")
    return {fmt: with_query(base + path, query) for fmt, path in FEED_PATHS.items()}


def discovery_links(base_url: str, f: PostFilter, names: Names) -> list[dict[str, str]]:
    """Attributes of `<link rel="alternate" …>` elements for an HTML page showing this filter."""
    title = describe(f, names)[0]
    return [{"rel": "alternate", "type": MEDIA_TYPES[fmt], "title": f"{title} ({fmt.upper()})", "href": url}
            for fmt, url in feed_links(base_url, f).items()]


def _joined(words: list[str], match: str) -> str:
    if len(words) < 2:
        return "".join(words)
    return f"{', '.join(words[:-1])} {'and' if match == 'all' else 'or'} {words[-1]}"


def _named(codes: tuple[str, ...], names: Mapping[str, str]) -> list[str]:
    return [names.get(code, code) for code in codes]


def title_words(f: PostFilter, names: Names) -> list[str]:
    """Each part of the filter as a short phrase, most telling first: places, topics, the rest."""
    words: list[str] = []
    places = _named(f.countries, names.countries) + _named(f.regions, names.regions) + _named(f.places, names.places)
    if places:
        words.append(_joined(places, f.match) + (" (primary)" if f.role == "primary" else ""))
    if f.topics:
        words.append(_joined(_named(f.topics, names.topics), f.match))
    if f.q:
        words.append(f"“{f.q}”")
    if f.sources:
        words.append("from " + _joined([names.sources.get(s, f"source {s}") for s in f.sources], "any"))
    if f.langs:
        words.append("in " + _joined(_named(f.langs, names.languages), "any"))
    if f.since:
        words.append(f"since {f.since:%Y-%m-%d %H:%M} UTC".replace(" 00:00 UTC", ""))
    if f.until:
        words.append(f"before {f.until:%Y-%m-%d %H:%M} UTC".replace(" 00:00 UTC", ""))
    return words


def describe(f: PostFilter, names: Names, *, site: str = "Regional security news") -> tuple[str, str]:
    """(title, subtitle): "Kazakhstan · Terrorism", and a sentence saying what the feed holds."""
    words = title_words(f, names)
    title = SEPARATOR.join(words) if words else "All posts"
    scope = "mainly about" if f.role == "primary" else "about"
    parts = []
    places = _named(f.countries, names.countries) + _named(f.regions, names.regions) + _named(f.places, names.places)
    if places:
        parts.append(f"{scope} {_joined(places, f.match)}")
    if f.topics:
        parts.append(f"on {_joined(_named(f.topics, names.topics), f.match).lower()}")
    rest = [w for w in words if w.startswith(("“", "from ", "in ", "since ", "before "))]
    sentence = " ".join(["posts", *parts, *(f"matching {w}" if w.startswith("“") else w for w in rest)])
    return title, f"{site}: {sentence}, newest first."
