"""Shared fixtures: a real PostgreSQL, a real local HTTP server, the shared data folder."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
SHARED_DATA = SHARED / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The project's neighbouring data folder (other people's files); tests needing it skip without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent: this test needs the shared data files beside the project")
    return SHARED_DATA
