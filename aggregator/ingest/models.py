"""Frozen records that flow between the pipeline stages. No I/O here.

fetch -> FetchResult; parse -> ParsedFeed ; normalize -> Post; tag -> Tag (aggregator.tagging).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aggregator.stories.features import PostFeatures
    from aggregator.tagging import Tag


@dataclass(frozen=True, slots=True)
class Validators:
    """What the last successful fetch told us, sent back verbatim on the next one."""

    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None


@dataclass(frozen=True, slots=True)
class FetchResult:
    """A completed HTTP exchange with a feed server (200 or 304).

    `permanent_url` is set when every hop of the redirect chain was permanent (301/308): the
    source's stored URL should move there. `unchanged` is true on a 304 *and* when the body hash
    equals the previous one, so the caller never re-parses a body it has already seen.
    """

    url: str
    final_url: str
    status: int
    body: bytes
    body_hash: str | None
    unchanged: bool
    validators: Validators
    content_type: str | None = None
    permanent_url: str | None = None
    max_age: int | None = None  # seconds, from Cache-Control max-age / Expires
    retry_after: datetime | None = None
    elapsed: float = 0.0


@dataclass(frozen=True, slots=True)
class Post:
    """One normalized entry, ready to store.

    `dedup_key` identifies the post across all sources: a globally unique entry id (Blogger's
    `tag:blogger.com,1999:blog-…post-…`, a urn:uuid, an absolute URL) is used as is; an id that
    is only unique inside its feed is prefixed by the feed's URL by the normalizer.
    `content_hash` changes exactly when the stored text of the post would change (an edit).
    """

    dedup_key: str
    guid: str
    url: str | None
    title: str
    author: str | None
    published_at: datetime | None
    updated_at: datetime | None
    categories: tuple[str, ...]
    html: str
    text: str
    summary: str
    lang: str | None
    content_hash: str
    tags: tuple[Tag, ...] = ()  # set by the tag stage
    # what story clustering compares, set by the tag stage when clustering is on (None: the worker
    # computes them itself); derived from the fields above, so not part of a post's equality
    story_features: PostFeatures | None = field(default=None, compare=False)
    # Fields the normalizer cut to their caps ("title", "author", "categories", "url"): not stored,
    # reported as a warning of the poll
    fields_cut: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FeedMeta:
    """Feed-level facts the scheduler and the source record care about."""

    title: str | None = None
    site_url: str | None = None
    ttl_minutes: int | None = None
    next_url: str | None = None  # rel="next" page (Blogger archive paging)
    total_results: int | None = None  # openSearch:totalResults (Blogger)


@dataclass(frozen=True, slots=True)
class FeedContent:
    """The result of parse + normalize for one body: what the store stage needs."""

    meta: FeedMeta
    posts: tuple[Post, ...]
    entries_found: int
    warnings: tuple[str, ...] = field(default=())
    taxonomy_version: str | None = None  # set when the posts carry tags
    # False when the body was cut short: its validators must not be kept, or the next conditional
    # GET would answer 304 and the entries lost in the cut would never be read
    complete: bool = True


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """What feedparser (or the JSON Feed adapter) read: feed-level and entry dicts, plus what it complained of."""

    feed: Mapping[str, Any]
    entries: tuple[dict[str, Any], ...]
    version: str
    warnings: tuple[str, ...] = ()
    ill_formed: bool = False  # the XML was broken; feedparser's loose parser recovered what it could
    cut_short: bool = False  # the body ended inside an entry, which was dropped (finished_entries)
