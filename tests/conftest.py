"""Shared fixtures: a real PostgreSQL, a real local HTTP server, the shared data folder.

The database is the embedded PostgreSQL (started by pgserver in a temporary folder) unless
TEST_DATABASE_URL names a server; each test session gets its own fresh database, and tables are
emptied between tests.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.config import Settings
from aggregator.db import Database
from tests.support.database import fresh_database, reset, server_url
from tests.support.feedserver import feed_server  # noqa: F401  (fixture)
from tests.support.hostile import hostile_corpus  # noqa: F401  (fixture)
from tests.support.shared import SHARED_DATA
from tests.support.smtp import smtp  # noqa: F401  (fixture)


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """The root logger as it was before the test: a command run in-process installs a handler on
    the stderr of that moment (the test's captured stream, closed after it), and a later thread of
    another test (an SMTP server stopping) would log into it: "I/O operation on closed file"."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The project's neighbouring data folder (other people's files); tests needing it skip without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent: this test needs the shared data files beside the project")
    return SHARED_DATA


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh, migrated database for this test session."""
    with fresh_database(server_url()) as url:
        yield url


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
        reset(conn, "ingest")
    yield database
    database.close()
