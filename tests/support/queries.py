"""Read-only queries that only tests ask: what the fetch log and the digests table hold."""

from __future__ import annotations

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from aggregator.db.digests import _COLUMNS, DigestRow
from aggregator.db.fetch_log import FetchLogEntry


def fetch_log_of_source(conn: psycopg.Connection, source_id: int, limit: int = 50) -> list[FetchLogEntry]:
    cur = conn.cursor(row_factory=class_row(FetchLogEntry))
    return cur.execute(
        "SELECT * FROM fetch_log WHERE source_id = %(id)s ORDER BY started_at DESC LIMIT %(limit)s",
        {"id": source_id, "limit": limit},
    ).fetchall()


def fetch_log(conn: psycopg.Connection) -> list[FetchLogEntry]:
    cur = conn.cursor(row_factory=class_row(FetchLogEntry))
    return cur.execute("SELECT * FROM fetch_log ORDER BY id").fetchall()


def digests_of_subscription(conn: psycopg.Connection, sub_id: int) -> list[DigestRow]:
    cur = conn.cursor(row_factory=class_row(DigestRow))
    statement = sql.SQL("SELECT {columns} FROM digests WHERE subscription_id = %(id)s ORDER BY period, id")
    return cur.execute(statement.format(columns=_COLUMNS), {"id": sub_id}).fetchall()
