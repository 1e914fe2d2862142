"""Shared fixtures: a real PostgreSQL, a real local HTTP server, the shared data folder.

The database is the embedded PostgreSQL (started by pgserver in a temporary folder) unless
TEST_DATABASE_URL names a server; each test session gets its own fresh database, and tables are
emptied between tests.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from aggregator.config import Settings
from aggregator.db import Database, start_embedded
from aggregator.db import migrate as migrate_db
from tests.digest.smtpsink import smtp  # noqa: F401  (fixture)
from tests.support.feedserver import feed_server  # noqa: F401  (fixture)

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
SHARED_DATA = SHARED / "data"
TABLES = ("fetch_log", "post_sources", "posts", "sources")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The project's neighbouring data folder (other people's files); tests needing it skip without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent: this test needs the shared data files beside the project")
    return SHARED_DATA


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh, migrated database for this test session."""
    server_url = os.environ.get("TEST_DATABASE_URL")
    if not server_url:  # its own folder (not pytest's, which other test runs may be cleaning up)
        server_url = start_embedded(Path(tempfile.mkdtemp(prefix="aggregator-test-pg-")),
                                    delete_on_exit=True)
    name = f"aggregator_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(server_url, dbname=name)
    with psycopg.connect(url, autocommit=True) as conn:
        migrate_db.migrate(conn)
    yield url
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings for tests: the test database, local fetching allowed, short deadlines."""
    return Settings(
        database_url=database_url,
        data_dir=tmp_path / "var",
        feeds_file=tmp_path / "feeds.yaml",
        allow_private_networks=True,
        fetch_deadline=5.0,
        connect_timeout=2.0,
        parse_processes=1,
        fetch_concurrency=4,
    )


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.database_url or "", max_size=6)
    with database.connection() as conn:
        conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
            sql.SQL(", ").join(sql.Identifier(t) for t in TABLES)))
    yield database
    database.close()
