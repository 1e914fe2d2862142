"""Entry points that serve the app: `serve` (web only) and `run_with_worker` (web + polling).

Both block until SIGINT/SIGTERM (uvicorn handles the signals), then close what they opened.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal

import uvicorn

from aggregator.config import Settings
from aggregator.web.app import create_app

log = logging.getLogger(__name__)


def _run_uvicorn(app: object, settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM, then return (so callers close what they opened).

    uvicorn shuts down gracefully on those signals and then re-raises the signal to the handler it
    found installed; with Python's default handlers that would kill the process before our cleanup
    runs, so quiet handlers are installed for the duration."""
    config = uvicorn.Config(app, host=settings.http_host, port=settings.http_port, log_config=None,
                            access_log=False, server_header=False, proxy_headers=True)
    previous = {sig: signal.signal(sig, _ignore) for sig in (signal.SIGINT, signal.SIGTERM)}
    log.info("web.listening url=http://%s:%d", settings.http_host, settings.http_port)
    try:
        uvicorn.Server(config).run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("web.stopped")


def _ignore(signum: int, _frame: object) -> None:
    log.info("web.stopping signal=%s", signal.Signals(signum).name)


def serve(settings: Settings) -> int:
    """`aggregator serve`: the web server alone (several may share one database).

    With HTTP_WORKERS > 1, uvicorn runs that many processes on one port: the app is CPU-bound in
    Python, so one process per core is what uses the machine.
    """
    from aggregator.service import open_checked_database

    with open_checked_database(settings, max_size=settings.http_pool_size) as db:
        if settings.http_workers > 1:
            return _serve_processes(settings, db.url)
        _run_uvicorn(create_app(settings, db), settings)
    return 0


def _serve_processes(settings: Settings, database_url: str) -> int:
    # The worker processes build their settings from the environment: point them at the server
    # this process resolved (the embedded one included, which this process keeps running).
    os.environ["DATABASE_URL"] = database_url
    log.info("web.listening url=http://%s:%d workers=%d", settings.http_host, settings.http_port,
             settings.http_workers)
    uvicorn.run("aggregator.web.server:worker_app", factory=True, workers=settings.http_workers,
                host=settings.http_host, port=settings.http_port, log_config=None, access_log=False,
                server_header=False, proxy_headers=True)
    log.info("web.stopped")
    return 0


def worker_app() -> object:
    """The app of one web worker process (uvicorn's factory): its own settings and pool."""
    from aggregator.config import load_settings
    from aggregator.db import Database
    from aggregator.logs import setup_logging

    settings = load_settings()
    setup_logging(settings.log_level, settings.log_format)
    db = Database(settings.database_url or "", max_size=settings.http_pool_size,
                  wait_seconds=settings.db_wait_seconds)
    atexit.register(db.close)
    return create_app(settings, db)


def run_with_worker(settings: Settings) -> int:
    """`aggregator run`: the polling scheduler in background threads and the web server in front,
    sharing one database pool."""
    from aggregator.scheduler import build_scheduler
    from aggregator.service import Runtime, sync_feeds_file
    from aggregator.worker import Worker

    with Runtime(settings) as rt:
        if settings.sync_feeds_file and settings.feeds_file.exists():
            sync_feeds_file(rt.db, settings)
        worker = Worker(rt.db, rt.pipeline, settings)
        scheduler = build_scheduler(worker, rt.db, settings, blocking=False)
        scheduler.start()
        log.info("worker.started name=%s concurrency=%d tick=%ss", worker.name, worker.capacity,
                 settings.tick_seconds)
        try:
            _run_uvicorn(create_app(settings, rt.db), settings)
        finally:
            scheduler.shutdown(wait=False)
            worker.shutdown()
            log.info("worker.stopped name=%s", worker.name)
    return 0
