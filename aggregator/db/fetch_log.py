"""SQL for the fetch log: one row per poll, the audit trail behind feed health and the tests
that prove each due feed is polled once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import class_row


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
    error_kind: str | None
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
    error_kind: str | None = None,
    error: str | None = None,
    entries: int = 0,
    new_posts: int = 0,
    updated_posts: int = 0,
) -> None:
    conn.execute(
        """
        INSERT INTO fetch_log (source_id, worker, due_at, started_at, finished_at, outcome, status,
                               error_kind, error, entries, new_posts, updated_posts)
        VALUES (%(source_id)s, %(worker)s, %(due_at)s, %(started_at)s, %(finished_at)s, %(outcome)s,
                %(status)s, %(error_kind)s, %(error)s, %(entries)s, %(new_posts)s, %(updated_posts)s)
        """,
        {k: v for k, v in locals().items() if k != "conn"},
    )


def for_source(conn: psycopg.Connection, source_id: int, limit: int = 50) -> list[FetchLogEntry]:
    cur = conn.cursor(row_factory=class_row(FetchLogEntry))
    return cur.execute(
        "SELECT * FROM fetch_log WHERE source_id = %(id)s ORDER BY started_at DESC LIMIT %(limit)s",
        {"id": source_id, "limit": limit},
    ).fetchall()


def all_entries(conn: psycopg.Connection) -> list[FetchLogEntry]:
    cur = conn.cursor(row_factory=class_row(FetchLogEntry))
    return cur.execute("SELECT * FROM fetch_log ORDER BY id").fetchall()


def prune(conn: psycopg.Connection, older_than: datetime) -> int:
    """Drop old rows so the log does not grow without bound over months of polling."""
    cur = conn.execute("DELETE FROM fetch_log WHERE started_at < %(t)s", {"t": older_than})
    return cur.rowcount
