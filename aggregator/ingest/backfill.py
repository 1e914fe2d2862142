"""Backfill a blog's archive: page through its feed until the archive is exhausted.

Blogger serves at most a page of posts per request (`start-index` is 1-based, `max-results`
is capped by the server, 25 by default); its Atom feed links the next page with rel="next".
Other feeds that link a next page (RFC 5005 paging) are followed the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aggregator.db import Database
from aggregator.db import posts as posts_db
from aggregator.db.sources import Source
from aggregator.ingest.models import FeedContent
from aggregator.ingest.parse_pool import ParseFn
from aggregator.ingest.pipeline import FetcherLike, cluster_new, store_tags
from aggregator.ingest.story_stage import StoryWindow
from aggregator.ingest.tag_stage import TagContext
from aggregator.stories.cluster import Params

MAX_PAGES = 2000


def with_params(url: str, **params: object) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query += [(k, str(v)) for k, v in params.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


def is_blogger(url: str) -> bool:
    parts = urlsplit(url)
    return "/feeds/posts/" in parts.path or parts.netloc.endswith(".blogspot.com")


@dataclass(slots=True)
class BackfillReport:
    pages: int = 0
    entries: int = 0
    new_posts: int = 0
    updated_posts: int = 0
    total: int | None = None


def first_page(url: str, page_size: int) -> str:
    if is_blogger(url):
        return with_params(url, **{"start-index": 1, "max-results": page_size})
    return url


def backfill(
    db: Database,
    fetcher: FetcherLike,
    parse: ParseFn,
    source: Source,
    *,
    page_size: int = 100,
    progress: Callable[[BackfillReport], None] = lambda report: None,
    taxonomy_dir: str | None = None,
    story_params: Params | None = None,
) -> BackfillReport:
    report = BackfillReport()
    url: str | None = first_page(source.url, page_size)
    seen: set[str] = set()
    start = 1
    stories = StoryWindow(story_params) if story_params is not None else None  # None: clustering off
    while url and url not in seen and report.pages < MAX_PAGES:
        seen.add(url)
        now = datetime.now(UTC)
        result = fetcher.fetch(url)
        ctx = TagContext(taxonomy_dir, tuple(source.default_countries), tuple(source.default_topics),
                         story_features=stories is not None)
        content = parse(result.body, result.final_url, result.content_type, now, ctx)
        report.pages += 1
        report.entries += content.entries_found
        report.total = content.meta.total_results or report.total
        with db.connection() as conn:
            stored = posts_db.upsert_for_source(conn, source.id, content.posts, now, content.taxonomy_version)
            store_tags(conn, content, stored)
            cluster_new(conn, content, stored, now, stories, backfill=True)
        report.new_posts += stored.new
        report.updated_posts += stored.updated
        progress(report)
        start += content.entries_found
        url = _next_page(source.url, content, start, page_size)
    return report


def _next_page(feed_url: str, content: FeedContent, start: int, page_size: int) -> str | None:
    if content.entries_found == 0:
        return None
    if content.meta.next_url:
        return content.meta.next_url
    if is_blogger(feed_url):  # the server may cap a page below page_size: go on until a page is empty
        return with_params(feed_url, **{"start-index": start, "max-results": page_size})
    return None
