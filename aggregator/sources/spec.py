"""A source as a person gives it, and the one check that turns it into one we store.

Pure: the taxonomy's codes arrive as a `Vocabulary`, errors are InvalidQueryError naming the
field. Every way in (feeds file, CLI, API, OPML) goes through `check_source`, so a code or a URL
accepted by one is accepted by all.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from aggregator.query import Vocabulary, normalize_codes
from aggregator.sources.urls import check_feed_url

Origin = Literal["config", "cli", "api", "opml"]
ORIGINS: tuple[str, ...] = get_args(Origin)
MAX_NAME_LENGTH = 300
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """A checked source. Codes are canonical (KZ, terrorism); None means "not given": a known
    source keeps its codes, a new one has none."""

    url: str
    name: str | None = None
    default_countries: tuple[str, ...] | None = ()
    default_topics: tuple[str, ...] | None = ()


@dataclass(frozen=True, slots=True)
class SourceInput:
    """A source as given, unchecked. `where` says where it came from (a file's entry or line), for
    the messages of whoever reads a list of them."""

    url: str
    name: str | None = None
    countries: Sequence[str] | None = None
    topics: Sequence[str] | None = None
    where: str = "url"


def check_source(given: SourceInput, vocabulary: Vocabulary) -> SourceSpec:
    """The checked source, or InvalidQueryError naming the bad field: the URL (scheme, host, port,
    no credentials), the country and topic codes against the taxonomy."""
    url = check_feed_url(given.url)
    return SourceSpec(url, clean_name(given.name), *check_codes(given.countries, given.topics, vocabulary))


def check_codes(countries: Sequence[str] | None, topics: Sequence[str] | None,
                vocabulary: Vocabulary) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    """Country and topic codes in their canonical case, each known to the taxonomy; None stays None."""
    return (
        None if countries is None else normalize_codes(countries, vocabulary.countries, "countries", upper=True),
        None if topics is None else normalize_codes(topics, vocabulary.topics, "topics", upper=False),
    )


def clean_name(name: str | None) -> str | None:
    """A display name on one line, at most MAX_NAME_LENGTH characters; blank means none."""
    if name is None:
        return None
    text = _SPACES.sub(" ", name).strip()
    return text[:MAX_NAME_LENGTH] or None
