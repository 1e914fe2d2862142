"""Keeps the monthly facet rollup current, in a background thread of the web server.

Facet answers are exact without it (changed months are counted live); it keeps them fast. Any
number of web servers may run it: an advisory lock lets one refresh at a time, and a refresh is
small (only the months changed since the last one).
"""

from __future__ import annotations

import logging
import threading

from aggregator.db import Database
from aggregator.db import facets as facets_db
from aggregator.errors import StorageError

log = logging.getLogger(__name__)


def refresh_once(db: Database) -> int:
    """Refresh changed months until none is left (each batch in its own transaction)."""
    total = 0
    while True:
        with db.connection() as conn:
            done = facets_db.refresh(conn, max_months=12)
        total += done
        if done == 0:
            return total


class FacetRefresher:
    def __init__(self, db: Database, interval: float) -> None:
        self.db = db
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start refreshing (again: an app's lifespan may be entered more than once)."""
        if self.interval <= 0 or (self._thread and self._thread.is_alive()):
            return
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(self._stop,), name="facet-refresher", daemon=True)
        self._thread.start()

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            try:
                months = refresh_once(self.db)
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
