"""The HTTP application: the versioned REST API plus health, readiness and metrics.

`create_app(settings, db)` builds it around a database the caller opened (and closes), so the same
app serves `aggregator serve`, `aggregator run` (beside the scheduler) and the tests.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware

from aggregator import __version__
from aggregator.config import Settings
from aggregator.db import Database
from aggregator.db import migrate as migrate_db
from aggregator.query import Vocabulary
from aggregator.web import errors
from aggregator.web.api import posts_router, taxonomy_router
from aggregator.web.context import ApiContext
from aggregator.web.feeds import feeds_router
from aggregator.web.metrics import LatencyMiddleware, Metrics
from aggregator.web.rollup import FacetRefresher
from aggregator.web.schemas import Health
from aggregator.web.security import SecurityHeadersMiddleware
from aggregator.web.sources import sources_router
from aggregator.web.subscriptions import subscriptions_router

DESCRIPTION = """Regional security news (Central Asia, Russia, the Caucasus, Afghanistan), tagged by country
and security topic.

Filters combine with AND; repeated values of `country`, `region` and `topic` combine as `match` says.
Pages are keyset-paginated: pass `next_cursor` back as `cursor`. Every error has the shape
`{"error": {"code", "message", "details"}}`."""


def cors_origins(value: str) -> list[str]:
    return [origin.strip() for origin in value.split(",") if origin.strip()]


def create_app(settings: Settings, db: Database, *, taxonomy: Any = None) -> FastAPI:
    """The app; `taxonomy` defaults to the one configured in settings (aggregator.tagging)."""
    if taxonomy is None:
        from aggregator.tagging import load_taxonomy

        taxonomy = load_taxonomy(Path(settings.taxonomy_dir) if settings.taxonomy_dir else None)
    ctx = ApiContext(settings, db, taxonomy, Vocabulary.from_taxonomy(taxonomy))
    refresher = FacetRefresher(db, settings.api_facets_refresh_seconds)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        refresher.start()
        # Everything loaded so far (the taxonomy's compiled gazetteer above all) lives as long as the
        # process: moved out of the collector's reach, a full collection no longer stalls a request
        # for ~40 ms by walking 75,000 objects that can never be garbage.
        gc.collect()
        gc.freeze()
        yield
        refresher.stop()

    app = FastAPI(title="aggregator", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  docs_url="/docs", redoc_url=None, openapi_url="/openapi.json")
    app.state.api = ctx
    errors.install(app)
    app.include_router(posts_router(ctx))
    app.include_router(taxonomy_router(ctx))
    app.include_router(sources_router(ctx))
    app.include_router(subscriptions_router(ctx))
    app.include_router(feeds_router(ctx))
    metrics = Metrics(db, statement_timeout=settings.api_statement_timeout)
    _add_service_routes(app, ctx, metrics)
    app.add_middleware(GZipMiddleware, minimum_size=1000)
    origins = cors_origins(settings.cors_origins)
    if origins:
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET"],
                           allow_headers=["If-None-Match"], expose_headers=["ETag"], max_age=600)
    app.add_middleware(SecurityHeadersMiddleware, site=app)
    app.add_middleware(LatencyMiddleware, metrics=metrics)  # outermost: times everything, gzip included
    return app


def _add_service_routes(app: FastAPI, ctx: ApiContext, metrics: Metrics) -> None:
    @app.get("/healthz", response_model=Health, tags=["service"], summary="The process is up")
    def healthz() -> Health:
        return Health(status="ok")

    @app.get("/readyz", response_model=Health, tags=["service"], responses=errors.ERROR_RESPONSES,
             summary="The database is reachable and its schema is the one this code needs")
    def readyz() -> Health:
        with ctx.read() as conn:
            migrate_db.check_current(conn)
        return Health(status="ready")

    @app.get("/metrics", tags=["service"], summary="Prometheus metrics",
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
    def prometheus() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)
