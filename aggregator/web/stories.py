"""Routes of /api/v1/stories: stories (one event, many outlets) filtered like posts, and one story.

A merged story's id keeps working: /api/v1/stories/{old} answers with the story it was merged into
(`merged_from` says so), so a link someone saved never breaks.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from aggregator.db import stories as stories_db
from aggregator.db.stories import StoryRow
from aggregator.errors import NotFoundError
from aggregator.query import (
    STORY_PARAMS,
    Cursor,
    encode_cursor,
    language_code,
    multi_dict,
    openapi_parameters,
    parse_story_query,
)
from aggregator.query import reject_unknown as reject
from aggregator.web.api import MAX_ID, json_response
from aggregator.web.context import ApiContext
from aggregator.web.errors import ERROR_RESPONSES, NOT_FOUND_RESPONSE
from aggregator.web.schemas import SourceRef, StoryDetail, StoryItem, StoryPage, StoryPostOut


def _item(row: StoryRow, titles: dict[int, str]) -> StoryItem:
    return StoryItem(id=row.id, title=titles.get(row.id, row.title), first_seen=row.first_seen_at,
                     last_seen=row.last_seen_at, updated=row.updated_at, posts=row.post_count,
                     sources=row.source_count)


def preferred_language(langs: tuple[str, ...], accept_language: str | None) -> str | None:
    """The language a story's title is shown in: the one language the filter asks for, else the
    reader's first choice in Accept-Language (its primary subtag); None: the first post's title."""
    if len(langs) == 1:
        return langs[0]
    ranked = []
    for number, part in enumerate((accept_language or "").split(",")):
        tag, _, rest = part.strip().partition(";")
        q = 1.0
        if rest.strip().startswith("q="):
            try:
                q = float(rest.strip()[2:])
            except ValueError:
                continue
        primary = language_code(tag.split("-")[0])
        if primary and q > 0:
            ranked.append((-q, number, primary))
    return min(ranked)[2] if ranked else None


def stories_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["stories"], responses=ERROR_RESPONSES)
    max_limit = ctx.settings.api_max_limit

    @router.get("/stories", response_model=StoryPage,
                summary="Stories with a post matching the filters, latest activity first",
                openapi_extra={"parameters": openapi_parameters(STORY_PARAMS, max_limit=max_limit)})
    def list_stories(request: Request) -> Response:
        params = multi_dict(request.query_params.multi_items())
        reject(params, STORY_PARAMS)
        query = parse_story_query(params, ctx.vocabulary, max_limit=max_limit,
                                  default_limit=ctx.settings.api_default_limit)
        preferred = preferred_language(query.filter.langs, request.headers.get("accept-language"))
        with ctx.read() as conn:
            rows = stories_db.list_stories(conn, query)
            page = rows[: query.limit]
            titles = stories_db.titles_in(conn, [r.id for r in page], preferred) if preferred and page else {}
        last = page[-1] if page else None
        more = len(rows) > query.limit and last is not None
        cursor = encode_cursor(Cursor("stories", last.last_seen_at, last.id)) if more and last else None
        response = json_response(StoryPage(items=[_item(r, titles) for r in page], next_cursor=cursor))
        response.headers["Vary"] = "Accept-Language"
        return response

    @router.get("/stories/{story_id}", response_model=StoryDetail,
                summary="One story with its posts and sources in order", responses=NOT_FOUND_RESPONSE)
    def get_story(story_id: Annotated[int, Path(ge=1, le=MAX_ID)],
                  lang: Annotated[str | None, Query(max_length=8, description="Preferred language of the "
                                                    "title (ISO 639-1), e.g. ru.")] = None) -> Response:
        with ctx.read() as conn:
            story = stories_db.resolve(conn, story_id)
            if story is None:
                raise NotFoundError("story", story_id)
            posts = stories_db.posts_of(conn, story.id)
            code = language_code(lang)
            titles = stories_db.titles_in(conn, [story.id], code) if code else {}
        sources: dict[int, SourceRef] = {}
        out = []
        for p in posts:
            source = (SourceRef(id=p.source_id, name=p.source_name or "", url=p.source_url or "")
                      if p.source_id else None)
            if source is not None:
                sources.setdefault(source.id, source)
            out.append(StoryPostOut(id=p.id, title=p.title, url=p.url, lang=p.lang, published=p.sort_at,
                                    source=source))
        merged_from = story_id if story.id != story_id else None
        return json_response(StoryDetail(**_item(story, titles).model_dump(), merged_from=merged_from,
                                         post_list=out, source_list=list(sources.values())))

    return router
