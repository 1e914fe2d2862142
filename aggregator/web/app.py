"""The HTTP application: the versioned REST API plus health, readiness and metrics.

`create_app(settings, db)` builds it around a database the caller opened (and closes), so the same
app serves `aggregator serve`, `aggregator run` (beside the scheduler) and the tests.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import anyio.to_thread
from fastapi import FastAPI, Response
from fastapi.middleware.gzip import GZipMiddleware
from fastapi_offline import FastAPIOffline

from aggregator import __version__
from aggregator.config import Settings, request_threads
from aggregator.db import Database
from aggregator.db import migrate as migrate_db
from aggregator.query import Vocabulary
from aggregator.web import errors
from aggregator.web.alerts import alerts_router
from aggregator.web.api import posts_router, taxonomy_router
from aggregator.web.context import ApiContext
from aggregator.web.feed_cache import FeedCache
from aggregator.web.feeds import feeds_router
from aggregator.web.guards import Cors, RequestLimits
from aggregator.web.head import HeadAsGet
from aggregator.web.metrics import LatencyMiddleware, Metrics
from aggregator.web.reader import reader_router
from aggregator.web.schemas import Health
from aggregator.web.security import SecurityHeadersMiddleware
from aggregator.web.sources import sources_router
from aggregator.web.static_files import static_files
from aggregator.web.stories import stories_router
from aggregator.web.subscriptions import subscriptions_router

if TYPE_CHECKING:
    from aggregator.tagging import Taxonomy

DESCRIPTION = """Regional security news (Central Asia, Russia, the Caucasus, Afghanistan), tagged by country
and security topic.

Filters combine with AND; repeated values of `country`, `region` and `topic` combine as `match` says.
Pages are keyset-paginated: pass `next_cursor` back as `cursor`. HEAD is answered wherever GET is.

Every error has the shape `{"error": {"code", "message", "details"}}`, and one status per kind of
fault, whatever the route: 400 for bad input (a query, path or body field: `invalid_parameter`, with
`details.parameter` naming it; a body that is not JSON: `invalid_json`), 401 without the admin key,
404, 405 (`Allow` lists the methods), 413 for a body over the size limit, 414 for a URL over 8 KB,
415 for a body not sent as `application/json`, 429 (with `Retry-After`), 503 while the database is
away (with `Retry-After`). 422 is never used. The feeds (`/feeds/...`) answer the same statuses
with the message as plain text, for feed readers to show."""


DOCS_URL = "/docs"
DOCS_ASSETS = "/docs/assets"
# The API's JSON compressed per answer (pages and feeds come compressed once per rendering). zlib's own
# default: a 50-post answer (49 KB) in 0.89 ms to 12.6 KB, where Starlette's 9 took 1.23 ms for 12.3 KB.
API_GZIP_LEVEL = 6


def cors_origins(value: str) -> list[str]:
    return [origin.strip() for origin in value.split(",") if origin.strip()]


class Background(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


def create_app(settings: Settings, db: Database, *, taxonomy: Taxonomy | None = None,
               feed_cache: FeedCache | None = None, background: Sequence[Background] = ()) -> FastAPI:
    """The app; `taxonomy` defaults to the one configured in settings (aggregator.tagging).

    It starts no thread of its own: `background` (given by aggregator.runtime: the facet rollup
    refresh, the feed-cache listener) is started and stopped with the app's lifespan."""
    if taxonomy is None:
        from aggregator.tagging import load_taxonomy

        taxonomy = load_taxonomy(Path(settings.taxonomy_dir) if settings.taxonomy_dir else None)
    ctx = ApiContext(settings, db, taxonomy, Vocabulary.from_taxonomy(taxonomy))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        for task in background:
            task.start()
        # Everything loaded so far (the taxonomy's compiled gazetteer, templates, routes: some 170,000
        # objects in a web process) lives as long as the process: moved out of the collector's reach,
        # a full collection no longer stalls every request queued on the process for 40-90 ms by
        # walking objects that can never be garbage.
        gc.collect()
        gc.freeze()
        # Requests run in worker threads, and Python runs one thread at a time: beyond a few threads
        # (enough to overlap one request's database wait with another's rendering) more only
        # interleave the answers, each taking longer. Measured on 2 cores with 20 clients of the
        # cold stream: the same 150 pages/s with 4 threads as with anyio's 40, p99 190 ms against 345.
        # Where `serve` runs a process per core, the processes overlap one another's waits and one
        # thread each does best (it sets HTTP_THREADS for them; see runtime._serve_processes).
        threads = request_threads(settings.http_threads, 1)
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        yield
        for task in reversed(background):
            task.stop()

    # Swagger UI from files the fastapi-offline package ships, not from a CDN: /docs works offline.
    # No validator badge: it would load an image from swagger.io.
    app = FastAPIOffline(title="aggregator", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                         docs_url=DOCS_URL, redoc_url=None, static_url=DOCS_ASSETS, openapi_url="/openapi.json",
                         swagger_ui_parameters={"validatorUrl": None})
    app.state.api = ctx
    errors.install(app)
    app.include_router(posts_router(ctx))
    app.include_router(taxonomy_router(ctx))
    app.include_router(sources_router(ctx))
    app.include_router(stories_router(ctx))
    app.include_router(alerts_router(ctx))
    app.include_router(subscriptions_router(ctx))
    cache = feed_cache or FeedCache(settings.feeds_cache_entries)
    app.include_router(feeds_router(ctx, cache))
    app.include_router(reader_router(ctx, cache))
    app.mount("/static", static_files(), name="static")
    metrics = Metrics(db, statement_timeout=settings.api_statement_timeout)
    _add_service_routes(app, ctx, metrics)
    app.add_middleware(GZipMiddleware, minimum_size=1000, compresslevel=API_GZIP_LEVEL)
    origins = cors_origins(settings.cors_origins)
    if origins:
        app.add_middleware(Cors, allow_origins=origins, allow_methods=["GET", "HEAD"],
                           allow_headers=["If-None-Match"], expose_headers=["ETag"], max_age=600)
    app.add_middleware(HeadAsGet)  # outside gzip: a HEAD keeps the Content-Length of the compressed GET
    app.add_middleware(RequestLimits, max_body_bytes=settings.http_max_body_bytes)
    docs_pages = [path for path in (DOCS_URL, app.swagger_ui_oauth2_redirect_url) if path]
    app.add_middleware(SecurityHeadersMiddleware, site=app, docs=docs_pages)
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
