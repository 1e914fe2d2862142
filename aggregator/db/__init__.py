"""The database edge: connection pool, the embedded server, and mapping psycopg errors once.

All SQL of the project lives in this package, one module per resource. Functions here take a
connection and never commit: the caller owns the transaction.
"""

from __future__ import annotations

import logging
import select
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from aggregator.config import Settings
from aggregator.errors import ConfigError, DatabaseUnavailable, StorageError

log = logging.getLogger(__name__)


def start_embedded(pgdata: Path, *, delete_on_exit: bool = False) -> str:
    """Start (or join) the embedded PostgreSQL kept under `pgdata` and return its URL.

    The server outlives nobody: it stops when the last process using it is gone, however that
    process ended (see db/embedded.py), and its data stays in `pgdata` for the next start.
    """
    from aggregator.db import embedded

    try:
        url = embedded.start(pgdata, delete_on_exit=delete_on_exit)
    except Exception as exc:  # pgserver raises plain subprocess/OS errors
        raise StorageError(f"could not start the embedded PostgreSQL in {pgdata}: {exc}") from exc
    log.info("db.embedded_started pgdata=%s", pgdata.resolve())
    return url


def database_url(settings: Settings) -> str:
    """DATABASE_URL when set, otherwise the embedded server's URL (started on demand)."""
    if settings.database_url:
        return settings.database_url
    return start_embedded(settings.embedded_pgdata())


def check_conninfo(url: str) -> None:
    """Refuse a malformed DATABASE_URL in words of our own, before any pool retries it.

    libpq's parse errors quote the text they choke on, which can be the password (a bad %-escape
    in it) or the whole URL; its messages must not reach a log, a terminal or a traceback, so the
    original error is not chained either.
    """
    try:
        psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        raise ConfigError("DATABASE_URL is not a valid PostgreSQL URL or key=value string "
                          "(its text is not shown: it may hold a password)") from None


def _check(conn: psycopg.Connection) -> None:
    """Fail for a connection the server has ended, so the pool replaces it.

    A server that ends a session (a restart, a terminated backend) says so and closes the socket,
    which makes the idle connection's socket readable; a live idle connection has nothing to
    read. So only a connection with something to read is asked with a round trip: asking every
    one, as psycopg_pool's own check does, cost each request 0.1 ms of the web process's CPU for
    every connection it took."""
    if conn.closed:
        raise psycopg.OperationalError("the connection is closed")
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    if readable:
        ConnectionPool.check_connection(conn)


class Database:
    """A connection pool over one PostgreSQL; `connection()` maps driver errors to StorageError.

    Built to ride out a database restart: every connection is checked as it leaves the pool
    (`_check`), so the first request after a restart gets a fresh connection instead of the dead
    one; and a caller waits at most `wait_seconds` for a connection while the server is away, then
    gets DatabaseUnavailable (the API answers 503, a poll retries) instead of hanging.
    """

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10, wait_seconds: float = 10.0,
                 start_seconds: float = 30.0) -> None:
        check_conninfo(url)
        self.url = url
        self.wait_seconds = wait_seconds
        self.pool = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            open=False,
            kwargs={"autocommit": False},
            name="aggregator",
            timeout=wait_seconds,
            check=_check,
        )
        try:
            self.pool.open(wait=True, timeout=start_seconds)
        except psycopg.Error as exc:
            raise StorageError(f"cannot connect to the database: {exc}") from exc
        except Exception as exc:  # PoolTimeout is not a psycopg.Error subclass
            self.pool.close()
            raise StorageError(f"cannot connect to the database: {exc}") from exc

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection; the block's transaction commits on success, rolls back on error."""
        try:
            with self.pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise DatabaseUnavailable(f"no database connection within {self.wait_seconds:g} s") from exc
        except PoolClosed as exc:  # we are shutting down: waiting for the database would only delay exit
            raise StorageError("the database pool is closed (shutting down)") from exc
        except psycopg.errors.QueryCanceled as exc:  # a statement timeout: the server is there
            raise StorageError(str(exc).strip()) from exc
        except psycopg.OperationalError as exc:  # connection lost, server shutting down or unreachable
            raise DatabaseUnavailable(str(exc).strip()) from exc
        except psycopg.Error as exc:
            raise StorageError(str(exc).strip()) from exc

    @contextmanager
    def read(self, *, statement_timeout: float) -> Iterator[psycopg.Connection]:
        """A read-only transaction on one snapshot: REPEATABLE READ, READ ONLY (every statement sees
        the same data: a page and its tags, the facet rollup and its dirty months), a statement
        timeout (a pathological query fails fast instead of holding a connection), and enough
        work_mem that bitmaps over tens of thousands of posts stay exact instead of lossy.
        Statements psycopg prepares keep their plan; those whose plan depends on a filter's values
        are run unprepared (post_filters.filtered)."""
        with self.connection() as conn:
            conn.execute(sql.SQL(
                "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET LOCAL statement_timeout = {}; "
                "SET LOCAL work_mem = '16MB'").format(sql.Literal(str(max(1, int(statement_timeout * 1000))))))
            yield conn

    @contextmanager
    def autocommit_connection(self) -> Iterator[psycopg.Connection]:
        """A separate connection outside the pool, for work that manages its own transactions."""
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                yield conn
        except psycopg.Error as exc:
            raise StorageError(str(exc).strip()) from exc

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_database(settings: Settings, *, max_size: int | None = None) -> Database:
    size = max_size if max_size is not None else max(4, settings.fetch_concurrency + 2)
    return Database(database_url(settings), max_size=size, wait_seconds=settings.db_wait_seconds,
                    start_seconds=settings.db_start_seconds)
