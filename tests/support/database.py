"""Databases for tests and benchmarks: a server (the configured one or an embedded one), a fresh
migrated database on it, and emptying tables between tests, each written once."""

from __future__ import annotations

import os
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from aggregator.db import migrate as migrate_db
from aggregator.db import start_embedded

# What each group of tests writes, emptied before the next test of that group.
TABLES = {
    "ingest": ("fetch_log", "post_sources", "posts", "sources", "stories"),
    "api": ("fetch_log", "post_sources", "post_tags", "posts", "sources", "stories"),
    "digests": ("digests", "subscriptions", "confirmation_sends", "app_secrets"),
    "saved_feeds": ("saved_feeds",),
}


def server_url(configured: str | None = None, *, folder_prefix: str = "aggregator-test-pg-") -> str:
    """`configured`, else TEST_DATABASE_URL, else an embedded PostgreSQL in a folder of its own (not
    pytest's, which other test runs may be cleaning up), removed when the process exits."""
    url = configured or os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    return start_embedded(Path(tempfile.mkdtemp(prefix=folder_prefix)), delete_on_exit=True)


class EmbeddedServer:
    """An embedded PostgreSQL in `folder` that a benchmark or the soak drives itself: its URL, its
    postmaster's pid (to watch its memory), stop and start (to inject an outage), and close.

    `keep_running` leaves it up after close, for a seeded benchmark database reused across runs."""

    def __init__(self, folder: Path, *, keep_running: bool = False) -> None:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset; harmless here
            warnings.simplefilter("ignore")
            import pgserver

        folder.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(folder.resolve(), cleanup_mode=None if keep_running else "stop")
        self.url: str = self._server.get_uri()

    @property
    def pid(self) -> int | None:
        return self._server.get_pid()

    def stop(self) -> None:
        """A fast shutdown, as an administrator's restart would do it (clients see their connections end)."""
        from pgserver._commands import pg_ctl

        pg_ctl(["-m", "fast", "-w", "stop"], pgdata=self._server.pgdata, user=self._server.system_user)

    def start(self) -> None:
        self._server.ensure_postgres_running()

    def close(self) -> None:
        """Stops the server unless it was opened with keep_running (then only this handle goes)."""
        self._server.cleanup()


@contextmanager
def fresh_database(server: str, *, prefix: str = "aggregator_test", migrate: bool = True) -> Iterator[str]:
    """A new database on `server` (migrated unless asked not to), dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(server, dbname=name)
    try:
        if migrate:
            with psycopg.connect(url, autocommit=True) as conn:
                migrate_db.migrate(conn)
        yield url
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def reset(conn: psycopg.Connection, *groups: str, patience: str = "15s") -> None:
    """Empty the tables of these groups (and what references them), restarting their ids.

    A session still holding those tables (a process an earlier test gave up on, whose server
    backend goes on until it next talks to its client) would make TRUNCATE wait forever and take
    every later test down with it: after a bounded wait, such sessions are ended and it tries again.
    """
    tables = dict.fromkeys(t for group in groups for t in TABLES[group])
    truncate = sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
        sql.SQL(", ").join(sql.Identifier(t) for t in tables))
    conn.execute("SELECT set_config('lock_timeout', %s, true)", [patience])
    try:
        with conn.transaction():
            conn.execute(truncate)
            return
    except psycopg.errors.LockNotAvailable:
        pass
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        " AND pid IN (SELECT pid FROM pg_locks WHERE relation IS NOT NULL AND granted)")
    conn.execute(truncate)
