"""APScheduler wiring only: *when* the worker ticks and housekeeping runs, never *how*."""

from __future__ import annotations

import logging
import signal
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from aggregator.config import Settings
from aggregator.db import Database
from aggregator.db import fetch_log as fetch_log_db
from aggregator.errors import DatabaseUnavailable, first_line
from aggregator.worker import Worker

log = logging.getLogger(__name__)

FETCH_LOG_DAYS = 30


def build_scheduler(worker: Worker, db: Database, settings: Settings, *, blocking: bool) -> BaseScheduler:
    """Polling ticks, digest sending and housekeeping. Every job is safe to run in several
    processes at once: the database decides who does what."""
    from aggregator.digest.commands import digest_job

    cls = BlockingScheduler if blocking else BackgroundScheduler
    scheduler = cls(executors={"default": ThreadPoolExecutor(3)}, timezone=UTC)
    scheduler.add_job(
        _safe_tick, "interval", args=[worker], seconds=settings.tick_seconds, id="tick",
        max_instances=1, coalesce=True, next_run_time=datetime.now(UTC),
    )
    scheduler.add_job(
        digest_job, "interval", args=[settings, db], seconds=settings.digest_check_seconds, id="digest",
        max_instances=1, coalesce=True, next_run_time=datetime.now(UTC) + timedelta(seconds=30),
    )
    scheduler.add_job(
        _prune_fetch_log, "interval", args=[db], hours=6, id="prune-fetch-log",
        max_instances=1, coalesce=True, next_run_time=datetime.now(UTC) + timedelta(minutes=1),
    )
    return scheduler


def _safe_tick(worker: Worker) -> None:
    """A failed tick (database restarting, say) is logged and retried at the next tick."""
    try:
        worker.tick()
    except DatabaseUnavailable as exc:  # expected while the database restarts: one line, no traceback
        log.warning("scheduler.tick_failed worker=%s error=%s", worker.name, first_line(exc))
    except Exception:
        log.exception("scheduler.tick_failed worker=%s", worker.name)


def _prune_fetch_log(db: Database) -> None:
    try:
        with db.connection() as conn:
            removed = fetch_log_db.prune(conn, datetime.now(UTC) - timedelta(days=FETCH_LOG_DAYS))
        log.info("fetch_log.pruned rows=%d", removed)
    except Exception:
        log.exception("fetch_log.prune_failed")


def stop_on_signals(scheduler: BaseScheduler, worker: Worker) -> None:
    """SIGTERM/SIGINT: stop ticking, let polls in flight finish, exit."""

    def handler(signum: int, _frame: object) -> None:
        log.info("scheduler.stopping signal=%s in_flight=%d", signal.Signals(signum).name, worker.busy)
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
