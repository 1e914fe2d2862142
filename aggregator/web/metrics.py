"""Prometheus metrics: request latency measured here, polling health read from the database.

Each answer also says how long the server held it (`Server-Timing: total;dur=ms`) and, for a page,
how much of that it waited for a request thread (`wait`) and how much went into answering it (`app`):
under load most of a page's latency is its place in the queue, which the client's own clock cannot
tell apart from the work (browsers show these figures in their developer tools).

Request latency is a per-process histogram (each API process is scraped on its own). Fetches,
ingested posts and poll lag are computed from fetch_log and sources at scrape time, so whichever
API process is scraped reports the work of every worker process, on every machine.
Each app gets its own registry: two apps in one process (tests) never collide.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aggregator.db import Database
from aggregator.db import stats as stats_db
from aggregator.errors import StorageError

log = logging.getLogger(__name__)

WINDOW_SECONDS = 3600
# The scope's state key that dates when a request thread began the request's own work (`work_started`).
WORK_STARTED = "work_started"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)


class PollingCollector(Collector):
    """Polling health, queried when Prometheus scrapes."""

    def __init__(self, db: Database, *, statement_timeout: float) -> None:
        self.db = db
        self.statement_timeout = statement_timeout

    def collect(self) -> Iterator[Metric]:
        try:
            with self.db.read(statement_timeout=self.statement_timeout) as conn:
                stats = stats_db.polling_stats(conn, window_seconds=WINDOW_SECONDS)
        except StorageError as exc:  # a scrape must still answer: the request metrics are worth having
            log.warning("metrics.db_unavailable error=%s", exc)
            up = GaugeMetricFamily("aggregator_database_up", "Whether the database answered this scrape.")
            up.add_metric([], 0)
            yield up
            return
        up = GaugeMetricFamily("aggregator_database_up", "Whether the database answered this scrape.")
        up.add_metric([], 1)
        yield up
        fetches = GaugeMetricFamily("aggregator_fetches_last_hour", "Feed fetches in the last hour, by outcome.",
                                    labels=["outcome"])
        for outcome in sorted({"ok", "not_modified", "unchanged", "error", *stats.fetches}):
            fetches.add_metric([outcome], stats.fetches.get(outcome, 0))
        yield fetches
        yield GaugeMetricFamily("aggregator_posts_ingested_last_hour", "New posts stored in the last hour.",
                                value=stats.posts_ingested)
        sources = GaugeMetricFamily("aggregator_sources", "Feed sources by state.", labels=["state"])
        for state, count in sorted(stats.sources.items()):
            sources.add_metric([state], count)
        yield sources
        yield GaugeMetricFamily("aggregator_sources_overdue", "Enabled sources past their next poll time, unclaimed.",
                                value=stats.overdue)
        yield GaugeMetricFamily("aggregator_poll_lag_seconds", "How far the most overdue source is behind.",
                                value=stats.max_lag_seconds)


class Metrics:
    def __init__(self, db: Database, *, statement_timeout: float) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "aggregator_http_request_duration_seconds", "HTTP request latency by route, method and status.",
            ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.registry.register(PollingCollector(db, statement_timeout=statement_timeout))

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class LatencyMiddleware:
    """Times each HTTP request under its route template (/api/v1/posts/{post_id}), never its raw
    path: raw paths would make one time series per post id."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"server-timing", _timing(scope, started))]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.latency.labels(scope["method"], template, str(status)).observe(time.perf_counter() - started)


def work_started(scope: Scope) -> None:
    """Marks now as when the request's own work began: called first thing in a request thread, so the
    time before it is the wait for the thread (the Server-Timing header's `wait`)."""
    scope.setdefault("state", {})[WORK_STARTED] = time.perf_counter()


def _timing(scope: Scope, started: float) -> bytes:
    now = time.perf_counter()
    total = f"total;dur={1000 * (now - started):.1f}"
    began = scope.get("state", {}).get(WORK_STARTED)
    if began is None:
        return total.encode("ascii")
    return f"wait;dur={1000 * (began - started):.1f}, app;dur={1000 * (now - began):.1f}, {total}".encode("ascii")
