"""The one place that starts and stops a process: `aggregator run`, `worker` and `serve`.

Every process kind is wired here, in the order it comes up and the reverse order it goes down:

    open and check the database ─► sync the feeds file ─► parse pool + fetcher + pipeline ─► worker
    ─► scheduler (polling ticks, digests, fetch-log pruning) ─► web app (+ its background threads)

`aggregator run` is all of it in one process; `worker` stops before the web app; `serve` is only the
web app and the threads a web process needs (facet rollup refresh, the feed-cache listener). The web
package holds the ASGI app and its routes and starts nothing by itself. One-shot commands (`poll`,
`backfill`, `retag`, …) take the parts they need from here too.
"""

from __future__ import annotations

import atexit
import errno
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator, MutableSequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from aggregator.config import Settings, request_threads
from aggregator.db import Database, open_database
from aggregator.db import fetch_log as fetch_log_db
from aggregator.db import migrate as migrate_db
from aggregator.db import recent_search as recent_search_db
from aggregator.errors import ConfigError
from aggregator.logs import failures_logged

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from apscheduler.schedulers.base import BaseScheduler
    from fastapi import FastAPI

    from aggregator.digest.context import DigestContext
    from aggregator.ingest.parse_pool import ParseFn
    from aggregator.ingest.pipeline import Pipeline
    from aggregator.ingest.worker import Worker
    from aggregator.tagging import Taxonomy
    from aggregator.web.app import Background

log = logging.getLogger(__name__)

FETCH_LOG_DAYS = 30


# --- the database ----------------------------------------------------------------------------

def open_checked_database(settings: Settings, *, migrate: bool = True, max_size: int | None = None) -> Database:
    """Open the database, bring its schema up to date (or only check it), refuse a newer one."""
    db = open_database(settings, max_size=max_size)
    try:
        with db.autocommit_connection() as conn:
            if migrate:
                migrate_db.migrate(conn)
            migrate_db.check_current(conn)
    except BaseException:
        db.close()
        raise
    return db


# --- polling ---------------------------------------------------------------------------------

class Ingest:
    """What polling needs, opened once and closed together: database, fetcher, parse pool, pipeline."""

    def __init__(self, settings: Settings) -> None:
        from aggregator.ingest.fetch import Fetcher
        from aggregator.ingest.parse_pool import ParsePool, parse_inline
        from aggregator.ingest.pipeline import Pipeline

        self.settings = settings
        self.db = open_checked_database(settings)
        try:
            self.fetcher = Fetcher(settings)
            processes = settings.parse_processes or os.cpu_count() or 1
            self._pool = ParsePool(processes) if processes > 1 else None
        except BaseException:
            self.db.close()
            raise
        self.parse: ParseFn = self._pool or parse_inline
        self.pipeline: Pipeline = Pipeline(self.db, self.fetcher, settings, parse=self.parse)

    def worker(self) -> Worker:
        from aggregator.ingest.worker import Worker

        return Worker(self.db, self.pipeline, self.settings)

    def close(self) -> None:
        if self._pool:
            self._pool.shutdown()
        self.fetcher.close()
        self.db.close()

    def __enter__(self) -> Ingest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sync_sources(db: Database, settings: Settings) -> None:
    """The feeds file, when the settings ask for it, made the truth about curated sources."""
    if settings.sync_feeds_file and settings.feeds_file.exists():
        from aggregator.sources.registry import sync_feeds_file

        sync_feeds_file(db, settings)


# --- the scheduler ---------------------------------------------------------------------------

def build_scheduler(worker: Worker, db: Database, settings: Settings, digests: DigestContext, *,
                    blocking: bool) -> BaseScheduler:
    """Polling ticks, digest sending and housekeeping: *when* jobs run, never *how*. Every job is
    safe to run in several processes at once: the database decides who does what."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.schedulers.blocking import BlockingScheduler

    cls = BlockingScheduler if blocking else BackgroundScheduler
    scheduler = cls(executors={"default": ThreadPoolExecutor(3)}, timezone=UTC)
    now = datetime.now(UTC)
    scheduler.add_job(_tick_job, "interval", args=[worker], seconds=settings.tick_seconds, id="tick",
                      max_instances=1, coalesce=True, next_run_time=now)
    scheduler.add_job(_digest_job, "interval", args=[digests], seconds=settings.digest_check_seconds,
                      id="digest", max_instances=1, coalesce=True, next_run_time=now + timedelta(seconds=30))
    scheduler.add_job(_prune_fetch_log_job, "interval", args=[db], hours=6, id="prune-fetch-log",
                      max_instances=1, coalesce=True, next_run_time=now + timedelta(minutes=1))
    # the web server's facet refresher does it too; here so that polling alone keeps the table small
    scheduler.add_job(_prune_recent_search_job, "interval", args=[db], minutes=5, id="prune-recent-search",
                      max_instances=1, coalesce=True, next_run_time=now + timedelta(minutes=1))
    return scheduler


def _tick_job(worker: Worker) -> None:
    """A failed tick (database restarting, say) is logged and retried at the next tick."""
    with failures_logged(log, "scheduler.tick_failed", worker=worker.name):
        worker.tick()


def _digest_job(digests: DigestContext) -> None:
    """The digest tick. A failed run is logged; the next one retries, and nothing was half-sent."""
    from aggregator.digest.delivery import send_due

    with failures_logged(log, "digest.job_failed"):
        send_due(digests)


def _prune_fetch_log_job(db: Database) -> None:
    with failures_logged(log, "fetch_log.prune_failed"):
        with db.connection() as conn:
            removed = fetch_log_db.prune(conn, datetime.now(UTC) - timedelta(days=FETCH_LOG_DAYS))
        log.info("fetch_log.pruned rows=%d", removed)


def _prune_recent_search_job(db: Database) -> None:
    with failures_logged(log, "recent_search.prune_failed"):
        with db.connection() as conn:
            removed = recent_search_db.prune(conn)
        log.info("recent_search.pruned rows=%d", removed)


@contextmanager
def _polling(settings: Settings, *, blocking: bool) -> Iterator[tuple[Ingest, Worker, BaseScheduler]]:
    """Database, sources, pipeline, worker and scheduler (not started); torn down in reverse."""
    from aggregator.digest.context import DigestContext

    with Ingest(settings) as ingest:
        sync_sources(ingest.db, settings)
        worker = ingest.worker()
        try:
            scheduler = build_scheduler(worker, ingest.db, settings, DigestContext.create(settings, ingest.db),
                                        blocking=blocking)
            log.info("worker.started name=%s concurrency=%d tick=%ss", worker.name, worker.capacity,
                     settings.tick_seconds)
            yield ingest, worker, scheduler
        finally:
            worker.shutdown()
            log.info("worker.stopped name=%s", worker.name)


# --- the web server --------------------------------------------------------------------------

def build_web_app(settings: Settings, db: Database, *, taxonomy: Taxonomy | None = None) -> FastAPI:
    """The ASGI app with the background threads a web process runs beside it (started and
    stopped with the app's lifespan): the facet rollup refresh and the feed-cache listener."""
    from aggregator.db.facets import region_definitions
    from aggregator.web.app import create_app
    from aggregator.web.feed_cache import ChangeListener, FeedCache
    from aggregator.web.rollup import FacetRefresher

    if taxonomy is None:
        from pathlib import Path

        from aggregator.tagging import load_taxonomy

        taxonomy = load_taxonomy(Path(settings.taxonomy_dir) if settings.taxonomy_dir else None)
    cache = FeedCache(settings.feeds_cache_entries)
    background: list[Background] = [FacetRefresher(db, settings.api_facets_refresh_seconds,
                                                   region_definitions(taxonomy))]
    if cache.max_entries > 0:
        background.append(ChangeListener(db.url, cache))
    return create_app(settings, db, taxonomy=taxonomy, feed_cache=cache, background=background)


def listen(settings: Settings) -> socket.socket:
    """The web server's socket, bound and listening: taken before anything else starts, so that a
    port in use costs a second and one line, not a database start and a round of polls first."""
    return _bound(settings.http_host, settings.http_port)


def listen_each(settings: Settings, taken: socket.socket, count: int) -> list[socket.socket]:
    """One listening socket per web process, all on the port `taken` holds (which is closed).

    With one socket that every process accepts from, a new connection went to whichever process
    woke first, and its event loop accepted everything waiting: a client's twenty keep-alive
    connections were often split 18 to 2 or 20 to 0, one process doing the work of two while the
    other idled. With SO_REUSEPORT each process has its own socket and Linux spreads new
    connections across them (elsewhere the processes share `taken`, as before). `taken`, bound
    without SO_REUSEPORT, was the check that no other program, nor another server of ours, listens
    on the port: sockets that all set SO_REUSEPORT would share it silently."""
    if not sys.platform.startswith("linux"):
        return [taken] * count  # BSD's SO_REUSEPORT gives one socket every connection: share `taken`
    port = int(taken.getsockname()[1])
    taken.close()
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sockets.append(_bound(settings.http_host, port, share=True))
    except ConfigError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _bound(host: str, port: int, *, share: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # what uvicorn does: restart at once
        if share:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigError(_listen_failure(host, port, exc)) from None
    sock.set_inheritable(True)
    return sock


def _listening(settings: Settings, sock: socket.socket) -> Settings:
    """The settings with the port actually bound (port 0 asks the system for a free one)."""
    port = int(sock.getsockname()[1])
    return settings if port == settings.http_port else settings.model_copy(update={"http_port": port})


def _listen_failure(host: str, port: int, exc: OSError) -> str:
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return (f"cannot listen on {where}: port {port} is in use by another program; choose another "
                f"port with AGGREGATOR_HTTP_PORT (or --port)")
    if exc.errno == errno.EACCES:
        return (f"cannot listen on {where}: permission denied (ports below 1024 need privileges); choose "
                f"another port with AGGREGATOR_HTTP_PORT (or --port)")
    reason = exc.strerror or str(exc)
    return (f"cannot listen on {where}: {reason}; check AGGREGATOR_HTTP_HOST and AGGREGATOR_HTTP_PORT "
            f"(or --host, --port)")


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _serve(app: object, settings: Settings, sock: socket.socket) -> None:
    """Serve on `sock` until SIGINT/SIGTERM, then return (so callers close what they opened).

    uvicorn shuts down gracefully on those signals and then re-raises the signal to the handler it
    found installed; with Python's default handlers that would kill the process before our cleanup
    runs, so quiet handlers are installed for the duration."""
    import uvicorn

    config = uvicorn.Config(app, host=settings.http_host, port=settings.http_port, log_config=None,
                            access_log=False, server_header=False, proxy_headers=True)
    previous = {sig: signal.signal(sig, _log_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    log.info("web.listening url=%s", _url(sock))
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("web.stopped")


def _log_signal(signum: int, _frame: object) -> None:
    log.info("web.stopping signal=%s", signal.Signals(signum).name)


MAX_AUTO_WORKERS = 4  # each process holds up to HTTP_POOL_SIZE connections; PostgreSQL allows 100 by default


def web_processes(settings: Settings) -> int:
    """HTTP_WORKERS, or with 0 one per core this process may run on (at most MAX_AUTO_WORKERS)."""
    if settings.http_workers:
        return settings.http_workers
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(MAX_AUTO_WORKERS, cores))


def _serve_processes(settings: Settings, database_url: str, sockets: list[socket.socket]) -> None:
    """A web process per socket (the app is CPU-bound in Python: one process per core), each
    accepting only from its own, until SIGINT/SIGTERM. A process that dies is started again on the
    same socket, where the connections that arrived meanwhile wait. One of the first processes that
    fails while starting (its app could not be built) stops them all: the settings are wrong, and it
    would fail again. A replacement that fails while starting (the database is down longer than
    DB_START_SECONDS, say) is tried again with a growing delay, while the others serve on."""
    import multiprocessing
    from multiprocessing.connection import wait

    from uvicorn.config import STARTUP_FAILURE

    from aggregator.web.balance import ABSENT

    # The worker processes build their settings from the environment: point them at the server
    # this process resolved (the embedded one included, which this process keeps running), and
    # at the address it listens on (links in emails name it).
    os.environ.update({"DATABASE_URL": database_url, "AGGREGATOR_HTTP_HOST": settings.http_host,
                       "AGGREGATOR_HTTP_PORT": str(sockets[0].getsockname()[1]),
                       "AGGREGATOR_HTTP_THREADS": str(request_threads(settings.http_threads, len(sockets))),
                       # The process the workers must outlive no longer than PARENT_CHECK_SECONDS: read
                       # by a worker from its environment, not from getppid() once it has started,
                       # which would be 1 already if this process was killed while it started.
                       PARENT_PID_VARIABLE: str(os.getpid())})
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads or pool copied from here
    # The connections each process holds (web/balance.py), where each has a socket of its own: on
    # one shared socket (not Linux) a closed connection would come back to whichever process accepts.
    distinct = len({id(sock) for sock in sockets}) == len(sockets)
    held = spawn.RawArray("i", [ABSENT] * len(sockets)) if distinct else None

    def start(index: int) -> multiprocessing.process.BaseProcess:
        process = spawn.Process(target=_web_process, args=(sockets[index], held, index), name="aggregator-web")
        process.start()
        return process

    stopping = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        _log_signal(signum, _frame)
        stopping.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    slots = [_Slot(index, start(index)) for index in range(len(sockets))]
    log.info("web.listening url=%s workers=%d", _url(sockets[0]), len(slots))
    failed = None
    try:
        while not stopping.is_set():
            now = time.monotonic()
            for slot in slots:
                if slot.process is None and slot.due <= now:
                    slot.process = start(slot.index)
            waits = [slot.due - now for slot in slots if slot.process is None]
            wait([slot.process.sentinel for slot in slots if slot.process is not None],
                 timeout=max(0.0, min([PARENT_CHECK_SECONDS, *waits])))
            for slot in slots:
                process = slot.process
                if process is None or process.exitcode is None or stopping.is_set():
                    continue
                if held is not None:
                    held[slot.index] = ABSENT  # no share of the connections for the others to keep for it
                if process.exitcode == STARTUP_FAILURE and not slot.replacing:
                    failed = f"a web process could not start (exit status {process.exitcode}); see its log above"
                    stopping.set()
                    break
                slot.ended(process.exitcode == STARTUP_FAILURE)
                if slot.delay:
                    log.warning("web.restart_failed pid=%s again_in=%.0fs", process.pid, slot.delay)
                else:
                    log.warning("web.process_died pid=%s exit=%s", process.pid, process.exitcode)
    finally:
        running = [slot.process for slot in slots if slot.process is not None]
        for process in running:
            if process.exitcode is None:
                process.terminate()  # uvicorn's graceful shutdown: requests in flight are answered
        for process in running:
            process.join(STOP_GRACE_SECONDS)
            if process.exitcode is None:
                process.kill()
                process.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failed:
        raise ConfigError(failed)
    log.info("web.stopped")


STOP_GRACE_SECONDS = 30
MAX_RESTART_DELAY = 30.0  # seconds between tries of a replacement web process that fails to start


@dataclass(slots=True)
class _Slot:
    """One socket of `serve` (its index) and the web process on it (None: waiting `due` to start one)."""

    index: int
    process: BaseProcess | None
    replacing: bool = False  # the process replaces one that ended: a failed start is tried again
    delay: float = 0.0  # before the next try, after a replacement failed to start (doubling)
    due: float = 0.0  # when the next process starts (monotonic)

    def ended(self, failed_start: bool) -> None:
        """Its process ended: start another at once after a crash, later after a failed start."""
        self.delay = min(MAX_RESTART_DELAY, max(1.0, self.delay * 2)) if failed_start else 0.0
        self.replacing, self.process, self.due = True, None, time.monotonic() + self.delay


def _web_process(sock: socket.socket, held: MutableSequence[int] | None, index: int) -> None:
    """One web process (spawned): uvicorn serving the app `web_process_app` builds, on `sock`,
    keeping its share of the connections (`held[index]`, see web/balance.py; None: one shared socket).

    The app is built here, not by uvicorn's factory: uvicorn reports only a TypeError of a factory
    as a startup failure, and anything else (no database within DB_START_SECONDS, say) ended the
    process like a crash, which serve answered by starting it again, and again."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE

    try:
        app = web_process_app()
    except Exception as exc:
        log.error("web.start_failed error=%s", exc)
        sys.exit(STARTUP_FAILURE)  # serve stops if this was its first start, else tries again later
    config = uvicorn.Config(app, log_config=None, access_log=False, server_header=False, proxy_headers=held is None)
    server = uvicorn.Server(config)
    if held is not None:
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        from aggregator.web.balance import ConnectionBalance, Shares

        shares = Shares(held, index)
        # the proxy headers inside the balance, which knows a connection by its peer's address
        config.app = ConnectionBalance(ProxyHeadersMiddleware(app, trusted_hosts=config.forwarded_allow_ips), shares)
        shares.peers = lambda: [connection.client for connection in server.server_state.connections]
        held[index] = 0  # serving from now: a process to share the connections with
    server.run(sockets=[sock])


def _stop_with_parent(parent: int) -> None:
    """A web process whose parent was killed outright (SIGKILL leaves it no time to stop its
    processes) stops too, instead of serving on alone and keeping the database it was given in use."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    log.warning("web.parent_gone parent=%d", parent)
    os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's graceful shutdown


PARENT_CHECK_SECONDS = 0.5
PARENT_PID_VARIABLE = "AGGREGATOR_WEB_PARENT_PID"  # handed from serve to its web processes, not a setting


def web_process_app() -> object:
    """The app of one web worker process (built by `_web_process`): its own settings and pool."""
    from aggregator.config import load_settings
    from aggregator.logs import setup_logging

    settings = load_settings()
    setup_logging(settings.log_level, settings.log_format)
    parent = int(os.environ.get(PARENT_PID_VARIABLE) or os.getppid())
    threading.Thread(target=_stop_with_parent, args=(parent,), name="parent-watch", daemon=True).start()
    db = open_database(settings, max_size=settings.http_pool_size)  # DATABASE_URL: set by the parent
    atexit.register(db.close)
    return build_web_app(settings, db)


# --- the three process kinds -----------------------------------------------------------------

def run_worker(settings: Settings) -> int:
    """`aggregator worker`: polling and digests, no web server (several may share one database)."""
    with _polling(settings, blocking=True) as (_ingest, worker, scheduler):
        _stop_on_signals(scheduler, worker)
        scheduler.start()  # blocks until a signal shuts it down
    return 0


def run_web(settings: Settings) -> int:
    """`aggregator serve`: the web server alone (several may share one database)."""
    sock = listen(settings)
    settings = _listening(settings, sock)
    with sock, open_checked_database(settings, max_size=settings.http_pool_size) as db:
        if (workers := web_processes(settings)) > 1:
            sockets = listen_each(settings, sock, workers)
            try:
                _serve_processes(settings, db.url, sockets)
            finally:
                for each in sockets:
                    each.close()
        else:
            _serve(build_web_app(settings, db), settings, sock)
    return 0


def run_all(settings: Settings) -> int:
    """`aggregator run`: the scheduler in background threads and the web server in front, sharing
    one database pool. The port comes first: nothing is started, or polled, for a server that
    cannot listen."""
    sock = listen(settings)
    settings = _listening(settings, sock)
    with sock, _polling(settings, blocking=False) as (ingest, _worker, scheduler):
        scheduler.start()
        try:
            _serve(build_web_app(settings, ingest.db), settings, sock)
        finally:
            scheduler.shutdown(wait=False)
    return 0


def _stop_on_signals(scheduler: BaseScheduler, worker: Worker) -> None:
    """SIGTERM/SIGINT: stop ticking, let polls in flight finish, exit."""

    def handler(signum: int, _frame: object) -> None:
        log.info("scheduler.stopping signal=%s in_flight=%d", signal.Signals(signum).name, worker.busy)
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)

