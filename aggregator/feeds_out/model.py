"""What a feed says, independent of its format: the records the Atom, RSS and JSON builders share.

The web layer fills these from database rows; the builders only turn them into bytes. Entry and feed
ids are `urn:uuid:` names derived from stable keys (the post's dedup key, the feed's canonical
query), so they never change across polls, hosts or re-ingestion of the same articles.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

# uuid5 namespace of this project's feed and entry ids (any fixed UUID; never change it).
ID_NAMESPACE = uuid.UUID("7d0b1f5e-1c1e-4f55-9a53-0b8f2a4e6c11")

MEDIA_TYPES = {
    "atom": "application/atom+xml",
    "rss": "application/rss+xml",
    "json": "application/feed+json",
}
GENERATOR = "aggregator"

# Characters XML 1.0 cannot carry at all (not even escaped): C0 controls but tab/LF/CR, lone
# surrogates, U+FFFE/U+FFFF. A feed title with a stray \x0b must not make the document ill-formed.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*$")


def xml_text(value: str) -> str:
    return _NOT_XML.sub("", value)


def language_tag(value: str | None) -> str | None:
    """`value` when it is a well-formed language tag (RFC 3066 shape), else None."""
    return value if value and _LANGUAGE_TAG.match(value) else None


def uuid_urn(key: str) -> str:
    return uuid.uuid5(ID_NAMESPACE, key).urn


def entry_id(dedup_key: str) -> str:
    return uuid_urn(f"post:{dedup_key}")


def utc(moment: datetime) -> datetime:
    """Whole seconds in UTC: what every format can carry, so all three say the same instant."""
    return moment.astimezone(UTC).replace(microsecond=0)


def rfc3339(moment: datetime) -> str:
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Category:
    term: str  # the code: KZ, terrorism
    label: str  # its name: Kazakhstan, Terrorism
    scheme: str  # URI of the vocabulary the code belongs to


@dataclass(frozen=True, slots=True)
class Origin:
    """The source a post came from (Atom <source>, RSS <source>, rel="via")."""

    title: str
    feed_url: str | None
    site_url: str | None


@dataclass(frozen=True, slots=True)
class Item:
    """One entry. `published` is None when the source gave no date: the entry then says nothing
    about when it was published (Atom without <published>, RSS without <pubDate>, JSON Feed without
    date_published) and `updated` (which Atom requires) is when the aggregator first saw it."""

    id: str
    title: str
    url: str | None
    author: str
    published: datetime | None
    updated: datetime
    summary: str  # plain text
    html: str  # sanitized HTML
    lang: str | None = None
    origin: Origin | None = None
    categories: tuple[Category, ...] = ()

    @property
    def date_estimated(self) -> bool:
        return self.published is None


@dataclass(frozen=True, slots=True)
class Channel:
    id: str
    title: str
    subtitle: str
    self_url: str  # this document, canonical
    home_url: str  # the same posts elsewhere (the API's list; an HTML page once there is one)
    alternates: dict[str, str]  # format -> URL of the same feed in the other formats
    updated: datetime
    items: tuple[Item, ...] = ()
    version: str = ""
    ttl_minutes: int | None = None
