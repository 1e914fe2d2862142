"""SQL for the fetch log: one row per poll, the audit trail behind feed health and the tests
that prove each due feed is polled once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from aggregator.errors import SourceError


@dataclass(slots=True)
class FetchLogEntry:
    id: int
    source_id: int
    worker: str
    due_at: datetime | None
    started_at: datetime
    finished_at: datetime
    outcome: str
    status: int | None
    error_kind: str | None  # the stored code of an ErrorKind (http_404, not_a_feed, ...)
    error: str | None
    entries: int
    new_posts: int
    updated_posts: int


def add(
    conn: psycopg.Connection,
    *,
    source_id: int,
    worker: str,
    due_at: datetime | None,
    started_at: datetime,
    finished_at: datetime,
    outcome: str,
    status: int | None = None,
    failure: SourceError | None = None,
    entries: int = 0,
    new_posts: int = 0,
    updated_posts: int = 0,
) -> None:
    """One poll; a failed one stores its kind's code and the first 2,000 characters of its message."""
    conn.execute(
        """
        INSERT INTO fetch_log (source_id, worker, due_at, started_at, finished_at, outcome, status,
                               error_kind, error, entries, new_posts, updated_posts)
        VALUES (%(source_id)s, %(worker)s, %(due_at)s, %(started_at)s, %(finished_at)s, %(outcome)s,
                %(status)s, %(error_kind)s, %(error)s, %(entries)s, %(new_posts)s, %(updated_posts)s)
        """,
        {"source_id": source_id, "worker": worker, "due_at": due_at, "started_at": started_at,
         "finished_at": finished_at, "outcome": outcome, "status": status,
         "error_kind": failure.code if failure else None, "error": failure.message[:2000] if failure else None,
         "entries": entries, "new_posts": new_posts, "updated_posts": updated_posts},
    )


def prune(conn: psycopg.Connection, older_than: datetime) -> int:
    """Drop old rows so the log does not grow without bound over months of polling."""
    cur = conn.execute("DELETE FROM fetch_log WHERE started_at < %(t)s", {"t": older_than})
    return cur.rowcount
