"""Keeps the monthly facet rollup current, in a background thread of the web server.

Facet answers are exact without it (changed months are counted live); it keeps them fast. Any
number of web servers may run it: an advisory lock lets one refresh at a time, and a refresh is
small (only the months changed since the last one).

It also raises the floor of the newest posts' search index (aggregator.db.recent_search) as posts
arrive, so that it stays the newest ~20,000.

Region counts are made with the taxonomy's region definitions: a refresher given them writes them to
the database first (when they differ, every month is rebuilt), at start and before each refresh.
"""

from __future__ import annotations

import logging
import threading

from aggregator.db import Database
from aggregator.db import facets as facets_db
from aggregator.db import recent_search as recent_search_db
from aggregator.db.facets import Regions
from aggregator.errors import StorageError

log = logging.getLogger(__name__)


def sync_regions(db: Database, regions: Regions) -> bool:
    with db.connection() as conn:
        changed = facets_db.sync_regions(conn, regions)
    if changed:
        log.info("facets.regions_changed regions=%d", len(regions))
    return changed


def refresh_once(db: Database, regions: Regions | None = None) -> int:
    """Refresh changed months until none is left (each batch in its own transaction), after making the
    rollup's region definitions these (None: keep them); then prune the newest posts' search index."""
    if regions is not None:
        sync_regions(db, regions)
    with db.connection() as conn:
        recent_search_db.prune(conn)
    total = 0
    while True:
        with db.connection() as conn:
            done = facets_db.refresh(conn, max_months=12)
        total += done
        if done == 0:
            return total


class FacetRefresher:
    def __init__(self, db: Database, interval: float, regions: Regions | None = None) -> None:
        self.db = db
        self.interval = interval
        self.regions = regions
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start refreshing (again: an app's lifespan may be entered more than once). The region
        definitions are written first, so that region counts are right from the first request."""
        if self.regions is not None:
            try:
                sync_regions(self.db, self.regions)
            except StorageError as exc:  # the database away at start: the next refresh writes them
                log.warning("facets.regions_sync_failed error=%s", exc)
        if self.interval <= 0 or (self._thread and self._thread.is_alive()):
            return
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(self._stop,), name="facet-refresher", daemon=True)
        self._thread.start()

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            try:
                months = refresh_once(self.db, self.regions)
                if months:
                    log.info("facets.refreshed months=%d", months)
            except StorageError as exc:  # the database restarting: try again at the next interval
                log.warning("facets.refresh_failed error=%s", exc)
            except Exception:
                log.exception("facets.refresh_failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread and self._thread.is_alive():
            self._thread.join(timeout=30)
