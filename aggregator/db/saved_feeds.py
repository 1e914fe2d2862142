"""SQL for saved feeds: a filter kept under a short slug (migration 0004).

The stored query is the canonical query string of the filter (parameters sorted, codes
normalized), produced and checked by the caller, so equal filters are stored equally.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql
from psycopg.rows import class_row


@dataclass(frozen=True, slots=True)
class SavedFeed:
    slug: str
    title: str | None
    query: str
    created_at: datetime
    updated_at: datetime


_COLUMNS = sql.SQL("slug, title, query, created_at, updated_at")


def upsert(conn: psycopg.Connection, slug: str, title: str | None, query: str) -> tuple[SavedFeed, bool]:
    """Store or replace the saved feed `slug`; True when it was new (xmax = 0: no earlier row version)."""
    row = conn.execute(
        sql.SQL("""
        INSERT INTO saved_feeds (slug, title, query) VALUES (%(slug)s, %(title)s, %(query)s)
        ON CONFLICT (slug) DO UPDATE SET title = excluded.title, query = excluded.query, updated_at = now()
        RETURNING {columns}, xmax = 0
        """).format(columns=_COLUMNS),
        {"slug": slug, "title": title, "query": query},
    ).fetchone()
    assert row is not None  # INSERT … RETURNING always returns the row
    return SavedFeed(*row[:5]), bool(row[5])


def get(conn: psycopg.Connection, slug: str) -> SavedFeed | None:
    cur = conn.cursor(row_factory=class_row(SavedFeed))
    statement = sql.SQL("SELECT {columns} FROM saved_feeds WHERE slug = %(slug)s").format(columns=_COLUMNS)
    return cur.execute(statement, {"slug": slug}).fetchone()


def list_all(conn: psycopg.Connection) -> list[SavedFeed]:
    cur = conn.cursor(row_factory=class_row(SavedFeed))
    return cur.execute(sql.SQL("SELECT {columns} FROM saved_feeds ORDER BY slug").format(columns=_COLUMNS)).fetchall()


def delete(conn: psycopg.Connection, slug: str) -> bool:
    return conn.execute("DELETE FROM saved_feeds WHERE slug = %(slug)s", {"slug": slug}).rowcount > 0
