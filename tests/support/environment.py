"""The environment a CLI command runs with in tests: the test database, one parse process, and
the feeds file and data folder in the test's own folder; a test adds what it is about."""

from __future__ import annotations

from pathlib import Path

import pytest


def use_cli_environment(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path,
                        **settings: str) -> None:
    """`settings` are extra variables, e.g. AGGREGATOR_ALLOW_PRIVATE_NETWORKS="true"."""
    values = {
        "DATABASE_URL": database_url,
        "AGGREGATOR_PARSE_PROCESSES": "1",
        "AGGREGATOR_FEEDS_FILE": str(tmp_path / "feeds.yaml"),
        "AGGREGATOR_DATA_DIR": str(tmp_path / "var"),
        **settings,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
