"""/api/v1/sources: feed sources with their health; adding, editing and removing need the admin key.

The key is compared in constant time (hmac.compare_digest) so response timing does not reveal how
much of a guess was right. With no key configured, every write is refused.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from aggregator.db import sources as sources_db
from aggregator.db.sources import SourceHealth
from aggregator.errors import NotFoundError
from aggregator.sources.registry import add_source, edit_source
from aggregator.sources.spec import SourceInput
from aggregator.sources.urls import redact_text, redact_url
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
    """A source as anyone may see it: secrets in its URLs (a key in the query, credentials stored
    before they were refused) are masked, in the error texts too."""
    s = row.source
    return SourceOut(
        id=s.id, url=redact_url(s.url), name=redact_text(s.display_name),
        site_url=redact_url(s.site_url) if s.site_url else None, enabled=s.enabled,
        disabled_reason=redact_text(s.disabled_reason) if s.disabled_reason else None,
        default_countries=s.default_countries, default_topics=s.default_topics,
        origin=s.origin, poll_interval=s.poll_interval, last_polled=s.last_polled_at,
        last_success=s.last_success_at, last_error=redact_text(s.last_error) if s.last_error else None,
        last_error_kind=s.last_error_kind,
        last_error_at=s.last_error_at, consecutive_failures=s.consecutive_failures,
        next_poll=s.next_poll_at if s.enabled else None, posts=row.posts_count, last_warnings=s.last_warnings,
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
        given = SourceInput(body.url, body.name, body.countries, body.topics)  # a repeated POST keeps what it omits
        with ctx.db.connection() as conn:
            source, created = add_source(conn, given, origin="api", vocabulary=ctx.vocabulary,
                                         poll_interval=ctx.settings.default_interval)
        response.status_code = 201 if created else 200
        return health(source.id)

    @router.patch("/sources/{source_id}", response_model=SourceOut, dependencies=[admin],
                  responses={**_UNAUTHORIZED, **NOT_FOUND_RESPONSE}, summary="Rename, refocus, enable or disable")
    def patch_source(body: SourcePatch, source_id: SourceId) -> SourceOut:
        with ctx.db.connection() as conn:
            source = sources_db.get(conn, source_id)
            if source is None:
                raise NotFoundError("source", source_id)
            edit_source(conn, source, vocabulary=ctx.vocabulary, name=body.name, countries=body.countries,
                        topics=body.topics, enabled=body.enabled)
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

