"""Numbered SQL migrations, applied in order under an advisory lock.

Each `NNNN_name.sql` file runs in its own transaction and is recorded in `schema_migrations`.
Two processes starting at once serialize on the lock; the second finds nothing left to do.
A database migrated by newer code is refused rather than used.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from aggregator.errors import SchemaVersionError, StorageError

log = logging.getLogger(__name__)

LOCK_KEY = 7_242_019_001  # arbitrary, constant: identifies "aggregator migrations" among advisory locks
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("aggregator.db").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise StorageError(f"migrations must be numbered 0001, 0002, … without gaps: {versions}")
    return found


def latest_version() -> int:
    return available_migrations()[-1].version


_CREATE_TABLE = """
    CREATE TABLE IF NOT EXISTS schema_migrations (
        version     integer PRIMARY KEY,
        name        text NOT NULL,
        applied_at  timestamptz NOT NULL DEFAULT now()
    )
"""


def current_version(conn: psycopg.Connection) -> int:
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: psycopg.Connection) -> list[str]:
    """Apply every pending migration; return the names applied. `conn` must be in autocommit mode
    or idle: each migration gets its own transaction."""
    migrations = available_migrations()
    conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    try:
        with conn.transaction():
            conn.execute(_CREATE_TABLE)
        version = current_version(conn)
        _refuse_newer(version, migrations[-1].version)
        applied = []
        for migration in migrations:
            if migration.version <= version:
                continue
            with conn.transaction():
                conn.execute(migration.sql.encode())  # bytes: run as a multi-statement script
                conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%(v)s, %(n)s)",
                    {"v": migration.version, "n": migration.name},
                )
            log.info("db.migrated version=%s name=%s", migration.version, migration.name)
            applied.append(migration.name)
        return applied
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


def check_current(conn: psycopg.Connection) -> None:
    """Raise unless the schema is exactly the one this code expects."""
    version = current_version(conn)
    latest = latest_version()
    _refuse_newer(version, latest)
    if version < latest:
        raise SchemaVersionError(
            f"database schema is at version {version}, this code needs {latest}: run `aggregator migrate`"
        )


def _refuse_newer(version: int, latest: int) -> None:
    if version > latest:
        raise SchemaVersionError(
            f"database schema is at version {version}, newer than this code knows ({latest}): "
            "upgrade the aggregator instead of running old code on a newer database"
        )
