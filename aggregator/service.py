"""Bringing the service up: database, schema check, feeds file sync. Shared by every command."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aggregator.config import Settings
from aggregator.db import Database, open_database
from aggregator.db import migrate as migrate_db
from aggregator.db import sources as sources_db
from aggregator.feeds_file import load_feeds_file

if TYPE_CHECKING:
    from aggregator.pipeline import ParseFn

log = logging.getLogger(__name__)


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


@dataclass(frozen=True, slots=True)
class SyncReport:
    added: list[str]
    updated: list[str]
    disabled: list[str]


def sync_feeds_file(db: Database, settings: Settings) -> SyncReport:
    """Make the database agree with config/feeds.yaml: add new, update names/tags, disable removed."""
    specs = load_feeds_file(settings.feeds_file)
    added, updated = [], []
    with db.connection() as conn:
        for spec in specs:
            _, created = sources_db.add(conn, spec, origin="config", poll_interval=settings.default_interval)
            (added if created else updated).append(spec.url)
        disabled = sources_db.disable_missing_from_config(conn, [s.url for s in specs])
    log.info("feeds.synced file=%s added=%d kept=%d disabled=%d", settings.feeds_file, len(added),
             len(updated), len(disabled))
    return SyncReport(added, updated, disabled)


class Runtime:
    """What polling commands need, opened once and closed together: database, fetcher, parser pool."""

    def __init__(self, settings: Settings) -> None:
        from aggregator.fetch import Fetcher
        from aggregator.pipeline import ParsePool, Pipeline, parse_inline

        self.settings = settings
        self.db = open_checked_database(settings)
        self.fetcher = Fetcher(settings)
        processes = settings.parse_processes or os.cpu_count() or 1
        self._pool = ParsePool(processes) if processes > 1 else None
        self.parse: ParseFn = self._pool or parse_inline
        self.pipeline = Pipeline(self.db, self.fetcher, settings, parse=self.parse)

    def close(self) -> None:
        if self._pool:
            self._pool.shutdown()
        self.fetcher.close()
        self.db.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
