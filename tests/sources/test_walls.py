"""Reading and checking sources needs no database: only adding them does (sources/registry.py).

The same import walk as tests/test_layout.py, applied to the sources package."""

from __future__ import annotations

import pytest

from tests.test_layout import IO_LAYERS, PACKAGE, hits, reachable


@pytest.mark.parametrize("module", ["files", "spec", "urls"])
def test_reading_and_checking_sources_import_no_io_layer(module: str) -> None:
    assert hits(reachable(PACKAGE / "sources" / f"{module}.py"), IO_LAYERS) == []
