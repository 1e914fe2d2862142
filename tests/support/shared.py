"""Where the shared data lives: other people's files, beside the project, never inside it.

Tests that need them skip without them (see the `shared_data` fixture); benchmarks take their
default inputs from here.
"""

from __future__ import annotations

from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
