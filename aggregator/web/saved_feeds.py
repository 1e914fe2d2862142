"""Saved feeds: a filter stored under a short slug, so a long query becomes a stable URL to share.

    POST   /api/v1/saved-feeds          admin key; {slug, query, title?}: stores the canonical query
    GET    /api/v1/saved-feeds          every saved feed with its feed URLs
    DELETE /api/v1/saved-feeds/{slug}   admin key
    GET    /feeds/{slug}.atom|.rss|.json   the feed (plain-text errors, like every /feeds/ URL)
    GET    /feeds/saved.opml               all saved feeds, for importing into a reader

The query is checked by the same parser as /feeds/atom and stored canonical, so a saved feed can
never hold a filter the feeds would refuse.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from aggregator.db import saved_feeds as saved_db
from aggregator.errors import InvalidQueryError, NotFoundError
from aggregator.feeds_out import MEDIA_TYPES
from aggregator.feeds_out.describe import canonical_query, with_query
from aggregator.feeds_out.opml import Outline, build_opml
from aggregator.query import multi_dict
from aggregator.web.context import ApiContext
from aggregator.web.errors import ERROR_RESPONSES, NOT_FOUND_RESPONSE
from aggregator.web.feed_handler import PLAIN_TEXT_RESPONSES, FeedService, PlainTextErrors, saved_feed_loader
from aggregator.web.schemas import ErrorBody
from aggregator.web.sources import admin_guard

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
Slug = Annotated[str, Path(pattern=SLUG_PATTERN, max_length=63)]
Format = Annotated[str, Path(pattern=f"^({'|'.join(MEDIA_TYPES)})$", description="atom, rss or json")]
_UNAUTHORIZED = {401: {"model": ErrorBody, "description": "The admin API key is missing or wrong."}}


class SavedFeedCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slug: str = Field(pattern=SLUG_PATTERN, max_length=63, examples=["kz-terrorism"],
                      description="Lower-case letters, digits and hyphens: the feed's URL is /feeds/{slug}.atom.")
    query: str = Field(max_length=2000, examples=["country=KZ&topic=terrorism"],
                       description="The query string of a /feeds/atom URL (its filters and limit).")
    title: str | None = Field(default=None, max_length=300, description="Feed title (default: the filter in words).")


class SavedFeedOut(BaseModel):
    slug: str
    title: str | None
    query: str = Field(description="Canonical: parameters sorted, codes normalized.")
    feeds: dict[str, str] = Field(description="URL of the feed in each format: atom, rss, json.")
    created: datetime
    updated: datetime


def saved_feeds_routers(ctx: ApiContext, service: FeedService) -> list[APIRouter]:
    return [_api_router(ctx, service), _feed_router(service)]


def _out(service: FeedService, request: Request, row: saved_db.SavedFeed) -> SavedFeedOut:
    base = service.base_url(request)
    return SavedFeedOut(slug=row.slug, title=row.title, query=row.query, created=row.created_at,
                        updated=row.updated_at, feeds={fmt: f"{base}/feeds/{row.slug}.{fmt}" for fmt in MEDIA_TYPES})


def _canonical(service: FeedService, text: str) -> str:
    if len(text) > 2000:
        raise InvalidQueryError("query", "longer than 2000 characters")
    query = service.parse(multi_dict(parse_qsl(text.lstrip("?"), keep_blank_values=True)))
    default = service.settings.feeds_default_entries
    return canonical_query(query.filter, query.limit if query.limit != default else None)


def _api_router(ctx: ApiContext, service: FeedService) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["saved feeds"], responses=ERROR_RESPONSES)
    admin = admin_guard(ctx.settings.admin_api_key.get_secret_value() if ctx.settings.admin_api_key else None)

    @router.post("/saved-feeds", response_model=SavedFeedOut, status_code=201, dependencies=[admin],
                 responses={**_UNAUTHORIZED, 200: {"model": SavedFeedOut, "description": "Replaced."}},
                 summary="Save a filter under a slug (or replace the one saved under it)")
    def create(body: SavedFeedCreate, request: Request, response: Response) -> SavedFeedOut:
        query = _canonical(service, body.query)
        with ctx.db.connection() as conn:
            row, created = saved_db.upsert(conn, body.slug, body.title, query)
        # Read-your-writes here at once; other web processes hear of it through the NOTIFY.
        service.cache.changed()
        response.status_code = 201 if created else 200
        return _out(service, request, row)

    @router.get("/saved-feeds", response_model=list[SavedFeedOut], summary="Saved feeds")
    def list_saved(request: Request) -> list[SavedFeedOut]:
        with ctx.read() as conn:
            return [_out(service, request, row) for row in saved_db.list_all(conn)]

    @router.delete("/saved-feeds/{slug}", status_code=204, dependencies=[admin],
                   responses={**_UNAUTHORIZED, **NOT_FOUND_RESPONSE}, summary="Delete a saved feed")
    def delete(slug: Slug) -> Response:
        with ctx.db.connection() as conn:
            if not saved_db.delete(conn, slug):
                raise NotFoundError("saved feed", slug)
        service.cache.changed()
        return Response(status_code=204)

    return router


def _feed_router(service: FeedService) -> APIRouter:
    router = APIRouter(tags=["feeds"], route_class=PlainTextErrors)

    @router.get("/feeds/saved.opml", summary="All saved feeds as OPML (Atom URLs)",
                responses={200: {"content": {"text/x-opml": {}}}, 503: PLAIN_TEXT_RESPONSES[503]})
    def opml(request: Request) -> Response:
        base = service.base_url(request)
        with service.ctx.read() as conn:
            rows = saved_db.list_all(conn)
        outlines = [Outline(row.title or row.slug, f"{base}/feeds/{row.slug}.atom",
                            with_query(f"{base}/api/v1/posts", row.query)) for row in rows]
        created = max((row.updated_at for row in rows), default=datetime(2000, 1, 1, tzinfo=UTC))
        body = build_opml("Saved feeds", outlines, created)
        return Response(body, media_type="text/x-opml; charset=utf-8",
                        headers={"Content-Disposition": 'inline; filename="saved-feeds.opml"'})

    @router.get("/feeds/{slug}.{fmt}", summary="A saved feed (fmt: atom, rss or json)",
                responses=PLAIN_TEXT_RESPONSES)
    async def saved_feed(request: Request, slug: Slug, fmt: Format) -> Response:
        base = service.base_url(request)
        return await service.respond(request, ("saved", fmt, base, slug), saved_feed_loader(service, slug, fmt, base))

    return router
