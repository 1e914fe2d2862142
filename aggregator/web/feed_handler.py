"""Reading, rendering and caching filtered feeds, for the routes of aggregator.web.feeds.

A feed is read in two steps (aggregator.db.feed_posts): the newest posts' narrow columns decide the
validators, so a conditional request that matches is answered 304 before any post body is read.
Rendered feeds are kept in memory until a post changes (aggregator.web.feed_cache), so most polls
read nothing at all. The ETag hashes everything the document is made from, so it is strong and the
same in every web process.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Callable, Coroutine, Hashable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import pycountry
from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from aggregator import __version__
from aggregator.db import facets as facets_db
from aggregator.db import feed_posts as feed_db
from aggregator.db import saved_feeds as saved_db
from aggregator.errors import NotFoundError
from aggregator.feeds_out import MEDIA_TYPES, Category, Channel, Item, Names, Origin, describe, entry_id, render
from aggregator.feeds_out import uuid_urn as feed_uuid
from aggregator.feeds_out.describe import canonical_query, feed_links, with_query
from aggregator.feeds_out.model import utc
from aggregator.query import FILTER_PARAMS, PostQuery, multi_dict, parse_group, parse_post_query, reject_unknown
from aggregator.sources.urls import redact_text, redact_url
from aggregator.textclean import html_to_text, sanitize_html
from aggregator.web import errors
from aggregator.web.context import ApiContext
from aggregator.web.feed_cache import FeedCache, Rendered, not_modified

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # `updated` of a feed with no entries: fixed, so its ETag holds
Loader = Callable[[Callable[[str, Any], bool]], Rendered]


FEED_PARAMS = (*FILTER_PARAMS, "limit", "group")
_TEXT = {"content": {"text/plain": {"schema": {"type": "string"}}}}
PLAIN_TEXT_RESPONSES: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified: If-None-Match or If-Modified-Since matched."},
    400: {"description": "A parameter is malformed or names an unknown code.", **_TEXT},
    404: {"description": "No such feed.", **_TEXT},
    "4XX": {"description": "Another client error (405, 413, 414) as plain text: the statuses of the API.", **_TEXT},
    503: {"description": "The database is unreachable or too slow.", **_TEXT},
}



class PlainTextErrors(APIRoute):
    """Routes whose errors are plain text: same status and message as the API's JSON errors."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:  # mapped to a status by the one mapping, then shown as text
                return as_plain_text(errors.to_response(exc))

        return handle


as_plain_text = errors.plain_text


@dataclass(frozen=True, slots=True)
class FeedRequest:
    """What one feed document depends on besides the posts."""

    fmt: str
    query: PostQuery
    base_url: str
    slug: str | None = None
    title: str | None = None  # a saved feed's own title
    group: str | None = None  # "story": one entry per story

    def self_url(self, default_limit: int) -> str:
        if self.slug:
            return f"{self.base_url}/feeds/{self.slug}.{self.fmt}"
        return self.links(default_limit)[self.fmt]

    def links(self, default_limit: int) -> dict[str, str]:
        links = feed_links(self.base_url, self.query.filter, self.limit_param(default_limit))
        if self.group:
            links = {fmt: f"{url}{'&' if '?' in url else '?'}group={self.group}" for fmt, url in links.items()}
        return links

    def limit_param(self, default_limit: int) -> int | None:
        return self.query.limit if self.query.limit != default_limit else None


class FeedService:
    """Reads, renders and caches feeds for the routes; one per app."""

    def __init__(self, ctx: ApiContext, cache: FeedCache) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.cache = cache
        self.regions = {code: region.name for code, region in ctx.taxonomy.regions.items()}

    def base_url(self, request: Request) -> str:
        return (self.settings.feeds_base_url or str(request.base_url)).rstrip("/")

    def parse(self, params: dict[str, list[str]]) -> PostQuery:
        reject_unknown(params, FEED_PARAMS)
        return parse_post_query(params, self.ctx.vocabulary, max_limit=self.settings.feeds_max_entries,
                                default_limit=self.settings.feeds_default_entries)

    @staticmethod
    def group(params: dict[str, list[str]]) -> str | None:
        return parse_group(params)

    async def respond(self, request: Request, key: Hashable,
                      load: Loader) -> Response:
        """From memory when possible; else `load` reads the database (in a worker thread)."""
        rendered = self.cache.get(key)
        if rendered is None or (rendered.body is None and not self.matches(request, rendered)):
            token = self.cache.token()  # before the snapshot: a change committed after it invalidates

            def wanted(etag: str, last_modified: Any) -> bool:
                return not not_modified(request.headers, etag, last_modified)

            rendered = await run_in_threadpool(load, wanted)
            self.cache.put(key, token, rendered)
        return self.answer(request, rendered)

    @staticmethod
    def matches(request: Request, rendered: Rendered) -> bool:
        return not_modified(request.headers, rendered.etag, rendered.last_modified)

    def answer(self, request: Request, rendered: Rendered) -> Response:
        gzip_variant = "gzip" in request.headers.get("accept-encoding", "")  # the variant a 200 would send
        headers = rendered.headers(gzip_variant=gzip_variant, max_age=self.settings.feeds_max_age)
        if self.matches(request, rendered) or rendered.body is None:  # no body: read for a 304
            return Response(status_code=304, headers=headers)
        media_type = f"{rendered.media_type}; charset=utf-8"
        if gzip_variant:
            return Response(rendered.gzipped(), media_type=media_type, headers={**headers, "Content-Encoding": "gzip"})
        return Response(rendered.body, media_type=media_type, headers=headers)

    def load_feed(self, req: FeedRequest, wanted: Callable[[str, Any], bool]) -> Rendered:
        """Validators from the newest posts' narrow columns; the bodies only when the client needs them."""
        f, limit = req.query.filter, req.query.limit
        with self.ctx.read() as conn:
            heads = feed_db.story_heads(conn, f, limit) if req.group else feed_db.heads(conn, f, limit)
            sources = {i: redact_text(name) for i, name in
                       (facets_db.source_names(conn, list(f.sources)) if f.sources else {}).items()}
            newest = max((max(h.changed_at, h.story_updated or h.changed_at) for h in heads), default=None)
            last_modified = utc(newest) if newest else None  # whole seconds, UTC: as HTTP dates carry it
            etag = self.etag(req, heads, sources)
            media_type = MEDIA_TYPES[req.fmt]
            if not wanted(etag, last_modified):
                return Rendered(etag, last_modified, media_type)
            bodies = feed_db.bodies(conn, [h.id for h in heads])
            reporters = feed_db.story_sources(conn, [h.story_id for h in heads if h.story_id]) if req.group else {}
        channel = self.channel(req, heads, bodies, sources, last_modified, reporters)
        return Rendered(etag, last_modified, media_type, render(req.fmt, channel))

    def etag(self, req: FeedRequest, heads: Sequence[feed_db.FeedHead], sources: dict[int, str]) -> str:
        """A strong validator: everything the document's bytes are made from, hashed. Post content
        is represented by changed_at, which every edit of a post sets; tags and the source by value."""
        parts = (__version__, self.ctx.taxonomy.version, self.settings.feeds_max_age, req.fmt, req.base_url,
                 req.slug, req.title, canonical_query(req.query.filter, req.query.limit), sorted(sources.items()),
                 req.group,
                 [(h.id, h.changed_at.isoformat(), h.countries, h.topics, h.source_id, h.source_name,
                   h.source_url, h.source_site_url, h.story_id, h.story_updated, h.story_sources, h.story_posts)
                  for h in heads])
        return f'"{hashlib.sha256(repr(parts).encode()).hexdigest()[:40]}"'

    def names(self, sources: dict[int, str], langs: Sequence[str]) -> Names:
        return Names(countries=self.ctx.taxonomy.countries, regions=self.regions, topics=self.ctx.taxonomy.topics,
                     places={code: place.name for code, place in self.ctx.taxonomy.places.items()},
                     sources=sources, languages={code: language_name(code) for code in langs})

    def channel(self, req: FeedRequest, heads: Sequence[feed_db.FeedHead], bodies: dict[int, feed_db.FeedBody],
                sources: dict[int, str], last_modified: Any,
                reporters: dict[int, list[str]] | None = None) -> Channel:
        f = req.query.filter
        title, subtitle = describe(f, self.names(sources, f.langs))
        default = self.settings.feeds_default_entries
        query = canonical_query(f, req.limit_param(default))
        alternates = ({fmt: f"{req.base_url}/feeds/{req.slug}.{fmt}" for fmt in MEDIA_TYPES} if req.slug
                      else req.links(default))
        items = tuple(self.item(req.base_url, h, bodies[h.id], (reporters or {}).get(h.story_id or 0))
                      for h in heads if h.id in bodies)
        group = f":group={req.group}" if req.group else ""
        return Channel(
            id=feed_uuid(f"saved:{req.slug}" if req.slug else f"query:{canonical_query(f)}{group}"),
            title=req.title or title, subtitle=subtitle, self_url=req.self_url(default),
            home_url=with_query(f"{req.base_url}/api/v1/posts", query), alternates=alternates,
            updated=last_modified or EPOCH, items=items, version=__version__,
            ttl_minutes=max(1, self.settings.feeds_max_age // 60),
        )

    def item(self, base_url: str, head: feed_db.FeedHead, body: feed_db.FeedBody,
             reporters: list[str] | None = None) -> Item:
        countries, topics = self.ctx.taxonomy.countries, self.ctx.taxonomy.topics
        categories = [Category(c, countries.get(c, c), f"{base_url}/api/v1/countries") for c in head.countries]
        categories += [Category(t, topics.get(t, t), f"{base_url}/api/v1/topics") for t in head.topics]
        origin = Origin(redact_text(head.source_name or head.source_url or ""),
                        redact_url(head.source_url) if head.source_url else None, head.source_site_url) \
            if head.source_id is not None else None
        item = Item(
            id=entry_id(body.dedup_key), title=plain(body.title) or "(untitled)", url=body.url,
            author=body.author or head.source_name or "unknown", published=body.published_at,
            updated=body.updated_at or body.published_at or body.first_seen_at, summary=plain(body.summary),
            html=sanitize_html(body.html, body.url), lang=body.lang, origin=origin, categories=tuple(categories),
        )
        if head.story_id is None:
            return item
        # One entry per story: its id is the story's, so it stays one entry as reports join, and
        # `updated` moves each time one does.
        also = [name for name in reporters or [] if name != head.source_name]
        note = (f"{head.story_posts} reports from {head.story_sources} sources"
                + (f"; also reported by {', '.join(also)}" if also else "") + ".")
        return replace(item, id=feed_uuid(f"story:{head.story_id}"),
                       updated=max(item.updated, head.story_updated or item.updated),
                       summary=f"{note} {item.summary}".strip(),
                       html=f"<p>{html.escape(note)}</p>{item.html}")


def plain(text: str) -> str:
    """Titles and summaries are plain text, but some feeds put markup in them and some readers render
    RSS titles and descriptions as HTML: whatever looks like a tag is reduced to its text."""
    return html_to_text(sanitize_html(text)) if "<" in text else text


def language_name(code: str) -> str:
    found = pycountry.languages.get(**{"alpha_2" if len(code) == 2 else "alpha_3": code})
    return str(found.name) if found is not None else code


def saved_feed_loader(service: FeedService, slug: str, fmt: str,
                      base_url: str) -> Loader:
    """Reads the saved feed's definition, then the feed; NotFoundError for an unknown slug."""

    def load(wanted: Callable[[str, Any], bool]) -> Rendered:
        with service.ctx.read() as conn:
            saved = saved_db.get(conn, slug)
        if saved is None:
            raise NotFoundError("saved feed", slug)
        query = service.parse(multi_dict(parse_qsl(saved.query, keep_blank_values=True)))
        return service.load_feed(FeedRequest(fmt, query, base_url, slug, saved.title), wanted)

    return load
