"""Read routes of /api/v1: posts (filtered, searched, paged), one post, facets, the taxonomy.

Query parameters are parsed by aggregator.query (the model the feeds and digests share), not by
route signatures: the OpenAPI parameters are generated from the same declarations.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, SerializeAsAny, TypeAdapter

from aggregator.db import facets as facets_db
from aggregator.db import post_filters as filters_db
from aggregator.db import tags as tags_db
from aggregator.errors import NotFoundError
from aggregator.query import (
    FILTER_PARAMS,
    PAGE_PARAMS,
    Cursor,
    encode_cursor,
    multi_dict,
    openapi_parameters,
    parse_days,
    parse_filter,
    parse_post_query,
    reject_unknown,
)
from aggregator.sources.urls import redact_text, redact_url
from aggregator.web.context import ApiContext
from aggregator.web.errors import ERROR_RESPONSES, NOT_FOUND_RESPONSE
from aggregator.web.schemas import (
    CountryOut,
    Evidence,
    Facets,
    FacetValue,
    LinkedSourceOut,
    PlaceOut,
    PostDetail,
    PostItem,
    PostPage,
    RegionOut,
    SourceRef,
    TagOut,
    TopicOut,
)

_LIST: TypeAdapter[list[BaseModel]] = TypeAdapter(list[SerializeAsAny[BaseModel]])
LIST_PARAMS = FILTER_PARAMS + PAGE_PARAMS
FACET_PARAMS = (*FILTER_PARAMS, "days")
MAX_ID = 2**63 - 1


def _params(request: Request, allowed: Sequence[str]) -> dict[str, list[str]]:
    params = multi_dict(request.query_params.multi_items())
    reject_unknown(params, allowed)
    return params


def _tag(ctx: ApiContext, kind: str, code: str, role: str | None, score: float,
         evidence: list[dict[str, object]] | None) -> TagOut:
    return TagOut(kind=kind, code=code, name=ctx.tag_name(kind, code), role=role, score=round(score, 4),
                  evidence=None if evidence is None else [Evidence.model_validate(e) for e in evidence])


def _source(source_id: int | None, name: str | None, url: str | None) -> SourceRef | None:
    """The post's source as anyone may see it: a key in its feed URL is masked."""
    if source_id is None:
        return None
    return SourceRef(id=source_id, name=redact_text(name or url or ""), url=redact_url(url or ""))


def _page(ctx: ApiContext, rows: list[filters_db.PostRow], tags: list[filters_db.TagRow], sort: str,
          more: bool) -> PostPage:
    by_post: dict[int, list[TagOut]] = defaultdict(list)
    for t in tags:
        by_post[t.post_id].append(_tag(ctx, t.kind, t.code, t.role, t.score, t.evidence))
    items = [
        PostItem(id=r.id, title=r.title, url=r.url, source=_source(r.source_id, r.source_name, r.source_url),
                 author=r.author, published=r.sort_at, date_estimated=r.published_at is None, updated=r.updated_at,
                 lang=r.lang, places=r.places, summary=r.summary,
                 text=r.text, score=r.rank, tags=by_post.get(r.id, []), story_id=r.story_id,
                 story_sources=r.story_sources)
        for r in rows
    ]
    last = rows[-1] if rows else None
    cursor = encode_cursor(Cursor(sort, last.sort_at, last.id, last.rank)) if more and last else None
    return PostPage(items=items, next_cursor=cursor)


def json_response(model: BaseModel | list[BaseModel]) -> Response:
    """Serialized once, by pydantic-core: the models were built from our own rows, so FastAPI's
    second validation pass over a 50-post page would only cost time (response_model still
    documents the shape, and the tests check responses against the schema)."""
    body = model.model_dump_json() if isinstance(model, BaseModel) else _LIST.dump_json(model)
    return Response(body, media_type="application/json")


def _facets(ctx: ApiContext, counts: Counter[str], names: dict[int, str], days: int) -> Facets:
    """'c:KZ' -> 12, … as the four facet lists: biggest first (days: newest first, at most `days`)."""
    result: dict[str, list[FacetValue]] = {"country": [], "topic": [], "source": [], "day": [], "lang": []}
    kinds = {"c": "country", "t": "topic", "s": "source", "d": "day", "l": "lang"}
    for key, count in counts.items():
        if count <= 0 or key[0] not in kinds or key[1] != ":":  # region keys ('r:') are the reader's
            continue
        kind, code = kinds[key[0]], key[2:]
        if kind == "source":
            name = names.get(int(code))
        else:
            name = None if kind in ("day", "lang") else ctx.tag_name(kind, code)
        result[kind].append(FacetValue(key=code, name=name, count=count))
    for kind in ("country", "topic", "source", "lang"):
        result[kind].sort(key=lambda v: (-v.count, v.key))
    result["day"] = sorted(result["day"], key=lambda v: v.key, reverse=True)[:days]
    return Facets(**result)


def _etag(body: bytes) -> str:
    return f'W/"{hashlib.sha256(body).hexdigest()[:32]}"'


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(candidate.strip().removeprefix("W/") == opaque for candidate in header.split(","))


def posts_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["posts"], responses=ERROR_RESPONSES)
    max_limit = ctx.settings.api_max_limit

    @router.get("/posts", response_model=PostPage, summary="Posts matching filters, newest or most relevant first",
                openapi_extra={"parameters": openapi_parameters(LIST_PARAMS, max_limit=max_limit)})
    def list_posts(request: Request) -> Response:
        query = parse_post_query(_params(request, LIST_PARAMS), ctx.vocabulary, max_limit=max_limit,
                                 default_limit=ctx.settings.api_default_limit)
        with ctx.read() as conn:
            rows = filters_db.list_posts(conn, query)
            page = rows[: query.limit]
            tags = filters_db.tags_of(conn, [r.id for r in page], evidence="evidence" in query.include)
        return json_response(_page(ctx, page, tags, query.sort, more=len(rows) > query.limit))

    @router.get("/posts/{post_id}", response_model=PostDetail, summary="One post with text, HTML and tag evidence",
                responses={304: {"description": "Not modified (If-None-Match matched the ETag)."},
                           **NOT_FOUND_RESPONSE})
    def get_post(request: Request, post_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> Response:
        with ctx.read() as conn:
            row = filters_db.get_post(conn, post_id)
            if row is None:
                raise NotFoundError("post", post_id)
            tags = tags_db.for_post(conn, post_id)
            linked = filters_db.sources_of(conn, post_id)
        first = linked[0] if linked else None
        detail = PostDetail(
            id=row.id, title=row.title, url=row.url, author=row.author, published=row.sort_at,
            date_estimated=row.published_at is None, updated=row.updated_at, first_seen=row.first_seen_at,
            changed=row.changed_at, lang=row.lang, places=row.places,
            categories=row.categories, summary=row.summary, text=row.text, html=row.html,
            source=_source(first.id, first.name, first.url) if first else None,
            sources=[LinkedSourceOut(id=s.id, name=redact_text(s.name), url=redact_url(s.url),
                                     first_seen=s.first_seen_at) for s in linked],
            taxonomy_version=row.taxonomy_version,
            tags=[_tag(ctx, t.kind, t.code, t.role, t.score, t.evidence) for t in tags],
            story_id=row.story_id,
        )
        body = detail.model_dump_json().encode()
        etag = _etag(body)
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if _etag_matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    @router.get("/facets", response_model=Facets, summary="Counts per country, topic, source and day",
                openapi_extra={"parameters": openapi_parameters(FACET_PARAMS, max_limit=max_limit)})
    def facets(request: Request) -> Response:
        params = _params(request, FACET_PARAMS)
        post_filter, days = parse_filter(params, ctx.vocabulary), parse_days(params)
        with ctx.read() as conn:
            counts = facets_db.counts(conn, post_filter, days=days)
            names = facets_db.source_names(conn, [int(k[2:]) for k in counts if k.startswith("s:")])
        return json_response(_facets(ctx, counts, {i: redact_text(n) for i, n in names.items()}, days))

    return router


def taxonomy_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["taxonomy"], responses=ERROR_RESPONSES)
    regions = {code: sorted(region.countries) for code, region in ctx.taxonomy.regions.items()}
    region_places = {code: sorted(places) for code, places in ctx.taxonomy.region_places.items()}

    def counts() -> tuple[dict[tuple[str, str], filters_db.TagCount], dict[str, int]]:
        def compute() -> tuple[dict[tuple[str, str], filters_db.TagCount], dict[str, int]]:
            with ctx.read() as conn:
                tag_counts = {(c.kind, c.code): c for c in filters_db.tag_counts(conn)}
                return tag_counts, filters_db.region_counts(conn, regions, region_places)
        return ctx.counts.get(compute)

    def count(kind: str, code: str) -> tuple[int, int]:
        found = counts()[0].get((kind, code))
        return (found.posts, found.primary_posts) if found else (0, 0)

    @router.get("/countries", response_model=list[CountryOut], summary="Countries of the taxonomy with post counts")
    def countries() -> Response:
        rows = [(code, name, *count("country", code)) for code, name in ctx.taxonomy.countries.items()]
        return json_response([CountryOut(code=c, name=n, posts=p, primary_posts=pp) for c, n, p, pp in sorted(rows)])

    @router.get("/regions", response_model=list[RegionOut], summary="Regions and their countries, with post counts")
    def list_regions() -> Response:
        region_posts = counts()[1]
        return json_response([RegionOut(code=code, name=ctx.taxonomy.regions[code].name, countries=members,
                          posts=region_posts.get(code, 0)) for code, members in regions.items()])

    @router.get("/places", response_model=list[PlaceOut], summary="Places below the country, with post counts")
    def places() -> Response:
        return json_response([PlaceOut(code=code, name=p.name, country=p.country, within=p.within,
                                       posts=count("place", code)[0]) for code, p in ctx.taxonomy.places.items()])

    @router.get("/topics", response_model=list[TopicOut], summary="Security topics with post counts")
    def topics() -> Response:
        return json_response([TopicOut(code=code, name=name, posts=count("topic", code)[0])
                              for code, name in ctx.taxonomy.topics.items()])

    return router

