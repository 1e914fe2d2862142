"""/api/v1/sources: feed sources with their health; adding, editing and removing need the admin key.

The key is compared in constant time (hmac.compare_digest) so response timing does not reveal how
much of a guess was right. With no key configured, every write is refused.
"""

from __future__ import annotations

import hmac
from typing import Annotated

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from aggregator.db import sources as sources_db
from aggregator.db.sources import Source, SourceHealth, SourceSpec
from aggregator.errors import ConfigError, InvalidQueryError, NotFoundError
from aggregator.feeds_file import check_url
from aggregator.query import normalize_codes
from aggregator.web.context import ApiContext
from aggregator.web.errors import ERROR_RESPONSES, NOT_FOUND_RESPONSE
from aggregator.web.schemas import ErrorBody, SourceCreate, SourceOut, SourcePatch

MAX_ID = 2**63 - 1
_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="The admin API key.")
_BEARER = HTTPBearer(auto_error=False, description="The admin API key as a bearer token.")
SourceId = Annotated[int, Path(ge=1, le=MAX_ID)]
Purge = Annotated[bool, Query(description="Delete the source row, not only disable it.")]
_UNAUTHORIZED = {401: {"model": ErrorBody, "description": "The admin API key is missing or wrong."}}


def admin_guard(expected: str | None) -> object:
    """A dependency that lets a request through only with the admin key (X-API-Key or Bearer)."""
    expected_bytes = expected.encode() if expected else None

    def check(key: Annotated[str | None, Security(_KEY_HEADER)] = None,
              bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None) -> None:
        given = key or (bearer.credentials if bearer else None)
        if expected_bytes is None or given is None or not hmac.compare_digest(given.encode(), expected_bytes):
            raise HTTPException(401, "a valid admin API key is required (X-API-Key header)",
                                headers={"WWW-Authenticate": 'Bearer realm="aggregator admin"'})

    return Depends(check)


def source_out(row: SourceHealth) -> SourceOut:
    s = row.source
    return SourceOut(
        id=s.id, url=s.url, name=s.display_name, site_url=s.site_url, enabled=s.enabled,
        disabled_reason=s.disabled_reason, default_countries=s.default_countries, default_topics=s.default_topics,
        origin=s.origin, poll_interval=s.poll_interval, last_polled=s.last_polled_at,
        last_success=s.last_success_at, last_error=s.last_error, last_error_kind=s.last_error_kind,
        last_error_at=s.last_error_at, consecutive_failures=s.consecutive_failures,
        next_poll=s.next_poll_at if s.enabled else None, posts=row.posts_count,
    )


def sources_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["sources"], responses=ERROR_RESPONSES)
    admin = admin_guard(ctx.settings.admin_api_key.get_secret_value() if ctx.settings.admin_api_key else None)

    def health(source_id: int) -> SourceOut:
        with ctx.read() as conn:
            found = [r for r in sources_db.list_with_health(conn) if r.source.id == source_id]
        if not found:
            raise NotFoundError("source", source_id)
        return source_out(found[0])

    def codes(countries: list[str], topics: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return (normalize_codes(countries, ctx.vocabulary.countries, "countries", upper=True),
                normalize_codes(topics, ctx.vocabulary.topics, "topics", upper=False))

    @router.get("/sources", response_model=list[SourceOut], summary="Sources with health")
    def list_sources() -> list[SourceOut]:
        with ctx.read() as conn:
            return [source_out(r) for r in sources_db.list_with_health(conn)]

    @router.get("/sources/{source_id}", response_model=SourceOut, responses=NOT_FOUND_RESPONSE, summary="One source")
    def get_source(source_id: SourceId) -> SourceOut:
        return health(source_id)

    @router.post("/sources", response_model=SourceOut, status_code=201, dependencies=[admin],
                 responses={**_UNAUTHORIZED, 200: {"model": SourceOut, "description": "Already known: updated."}},
                 summary="Add a source (or re-enable and update a known one)")
    def create_source(body: SourceCreate, response: Response) -> SourceOut:
        try:
            url = check_url(body.url, "url")
        except ConfigError as exc:
            raise InvalidQueryError("url", "not an http(s) URL") from exc
        countries, topics = codes(body.countries or [], body.topics or [])
        with ctx.db.connection() as conn:
            known = sources_db.get_by_url(conn, url)
            if known is not None:  # a repeated POST adds what it names and keeps the rest
                countries = countries if body.countries is not None else tuple(known.default_countries)
                topics = topics if body.topics is not None else tuple(known.default_topics)
            spec = SourceSpec(url, body.name, countries, topics)
            source, created = sources_db.add(conn, spec, origin="api", poll_interval=ctx.settings.default_interval)
        response.status_code = 201 if created else 200
        return health(source.id)

    @router.patch("/sources/{source_id}", response_model=SourceOut, dependencies=[admin],
                  responses={**_UNAUTHORIZED, **NOT_FOUND_RESPONSE}, summary="Rename, refocus, enable or disable")
    def patch_source(body: SourcePatch, source_id: SourceId) -> SourceOut:
        countries, topics = codes(body.countries or [], body.topics or [])
        with ctx.db.connection() as conn:
            source = sources_db.get(conn, source_id)
            if source is None:
                raise NotFoundError("source", source_id)
            _apply_patch(conn, source, body, countries, topics)
        return health(source_id)

    @router.delete("/sources/{source_id}", status_code=204, dependencies=[admin],
                   responses={**_UNAUTHORIZED, **NOT_FOUND_RESPONSE},
                   summary="Disable a source (its posts stay); purge=true deletes it")
    def delete_source(source_id: SourceId, purge: Purge = False) -> Response:
        with ctx.db.connection() as conn:
            if sources_db.get(conn, source_id) is None:
                raise NotFoundError("source", source_id)
            if purge:
                sources_db.delete(conn, source_id)
            else:
                sources_db.disable(conn, source_id, "removed through the API")
        return Response(status_code=204)

    return router


def _apply_patch(conn: psycopg.Connection, source: Source, body: SourcePatch, countries: tuple[str, ...],
                 topics: tuple[str, ...]) -> None:
    """Edit through the same upsert the CLI uses (in the caller's transaction), then restore or set
    the disabled state: `add` re-enables a source, which a PATCH must only do when asked."""
    fields = body.model_fields_set
    spec = SourceSpec(
        source.url,
        body.name if "name" in fields and body.name else source.name,
        countries if "countries" in fields and body.countries is not None else tuple(source.default_countries),
        topics if "topics" in fields and body.topics is not None else tuple(source.default_topics),
    )
    sources_db.add(conn, spec, origin=source.origin, poll_interval=source.poll_interval)
    if body.enabled is False:
        sources_db.disable(conn, source.id, "disabled through the API")
    elif body.enabled is None and not source.enabled:
        sources_db.disable(conn, source.id, source.disabled_reason or "disabled")
