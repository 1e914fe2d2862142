"""The database edge: connection pool, the embedded server, and mapping psycopg errors once.

All SQL of the project lives in this package, one module per resource. Functions here take a
connection and never commit: the caller owns the transaction.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg_pool import ConnectionPool

from aggregator.config import Settings
from aggregator.errors import StorageError

log = logging.getLogger(__name__)


def start_embedded(pgdata: Path, *, delete_on_exit: bool = False) -> str:
    """Start (or join) the embedded PostgreSQL kept under `pgdata` and return its URL.

    The server outlives nothing: it stops when the last process using it exits, and its data
    stays in `pgdata` for the next start.
    """
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset; harmless here
        warnings.simplefilter("ignore")
        import pgserver  # imported here: only the embedded mode needs it

    pgdata = pgdata.resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = pgserver.get_server(pgdata, cleanup_mode="delete" if delete_on_exit else "stop")
    except Exception as exc:  # pgserver raises plain subprocess/OS errors
        raise StorageError(f"could not start the embedded PostgreSQL in {pgdata}: {exc}") from exc
    log.info("db.embedded_started pgdata=%s", pgdata)
    return server.get_uri()


def database_url(settings: Settings) -> str:
    """DATABASE_URL when set, otherwise the embedded server's URL (started on demand)."""
    if settings.database_url:
        return settings.database_url
    return start_embedded(settings.embedded_pgdata())


class Database:
    """A connection pool over one PostgreSQL; `connection()` maps driver errors to StorageError."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self.pool = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            open=False,
            kwargs={"autocommit": False},
            name="aggregator",
        )
        try:
            self.pool.open(wait=True, timeout=30)
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
        except psycopg.Error as exc:
            raise StorageError(str(exc).strip()) from exc

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
    return Database(database_url(settings), max_size=size)
