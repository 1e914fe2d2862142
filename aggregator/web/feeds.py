"""Filtered feeds: /feeds/atom, /feeds/rss and /feeds/json for any filter of /api/v1/posts.

The filter parameters are parsed by aggregator.query (the API's one parser, not a copy); `limit`
says how many entries (settings: default and maximum). Errors are answered in plain text: feed
readers show the body of a failed fetch to the person who pasted the URL. Which status an error
gets is still decided in one place, aggregator.web.errors. Saved feeds: aggregator.web.saved_feeds.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from aggregator.feeds_out import MEDIA_TYPES
from aggregator.feeds_out.describe import canonical_query
from aggregator.query import multi_dict, openapi_parameters
from aggregator.web.context import ApiContext
from aggregator.web.feed_cache import FeedCache
from aggregator.web.feed_handler import FEED_PARAMS, PLAIN_TEXT_RESPONSES, FeedRequest, FeedService, PlainTextErrors
from aggregator.web.saved_feeds import saved_feeds_routers

FORMAT_NAMES = {"atom": "Atom 1.0", "rss": "RSS 2.0", "json": "JSON Feed 1.1"}


def feeds_router(ctx: ApiContext, cache: FeedCache) -> APIRouter:
    """The feed routes plus the saved-feed API, answering from `cache` (kept current by the change
    listener the runtime runs beside the app)."""
    service = FeedService(ctx, cache)
    router = APIRouter(tags=["feeds"], route_class=PlainTextErrors)
    for fmt in MEDIA_TYPES:
        _add_query_feed(router, service, fmt)
    for child in saved_feeds_routers(ctx, service):
        router.include_router(child)
    return router


def _add_query_feed(router: APIRouter, service: FeedService, fmt: str) -> None:
    async def query_feed(request: Request) -> Response:
        params = multi_dict(request.query_params.multi_items())
        query = service.parse(params)
        req = FeedRequest(fmt, query, service.base_url(request), group=service.group(params))
        key = ("query", fmt, req.base_url, canonical_query(query.filter, query.limit), req.group)
        return await service.respond(request, key, lambda wanted: service.load_feed(req, wanted))

    router.add_api_route(
        f"/feeds/{fmt}", query_feed, methods=["GET"], summary=f"{FORMAT_NAMES[fmt]} feed of the posts matching filters",
        description="Takes the filters of /api/v1/posts, `limit` (entries) and `group=story` (one entry per "
                    "story, its id stable, its `updated` moving as reports join). Conditional requests "
                    "(If-None-Match, If-Modified-Since) are answered 304; errors are plain text.",
        responses={200: {"content": {MEDIA_TYPES[fmt]: {}}}, **PLAIN_TEXT_RESPONSES},
        openapi_extra={"parameters": openapi_parameters(FEED_PARAMS, max_limit=service.settings.feeds_max_entries)},
    )
