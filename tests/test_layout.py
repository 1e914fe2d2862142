"""The walls of the package layout (docs/ARCHITECTURE.md), checked on the source with `ast`.

- `aggregator/web/` is the ASGI app only: it never imports the worker, the scheduler, the ingest
  pipeline or the runtime that wires them (a web process must not start polling by accident).
- Pure decision modules import no I/O layer, directly or through another module of ours, so they
  stay testable table-driven and cheap to import in a parse process.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "aggregator"
IO_LAYERS = ("aggregator.db", "aggregator.web", "aggregator.runtime", "httpx", "psycopg", "psycopg_pool",
             "fastapi", "starlette", "uvicorn", "apscheduler", "smtplib")
PURE = ("aggregator.ingest.normalize", "aggregator.ingest.next_poll", "aggregator.query", "aggregator.tagging",
        "aggregator.feeds_out", "aggregator.stories")
NOT_FROM_WEB = ("aggregator.ingest", "aggregator.runtime", "apscheduler")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(prefix: str) -> list[Path]:
    """The files of a module or of a package (all of it)."""
    base = PACKAGE.parent.joinpath(*prefix.split("."))
    if base.is_dir():
        return sorted(base.rglob("*.py"))
    return [base.with_suffix(".py")]


def imported(path: Path) -> Iterator[str]:
    """Every module a file imports, at any depth of its code (function-level imports count)."""
    tree = ast.parse(path.read_text("utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{path}: the package uses absolute imports only"
            base = node.module or ""
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def resolve(name: str) -> Path | None:
    """The file of one of our modules (None for third-party names and imported attributes)."""
    if not name.startswith("aggregator"):
        return None
    base = PACKAGE.parent.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def reachable(path: Path) -> frozenset[str]:
    """What a module imports, followed through our own modules (not through third-party ones)."""
    seen: set[str] = set()
    todo = [path]
    visited: set[Path] = set()
    while todo:
        current = todo.pop()
        if current in visited:
            continue
        visited.add(current)
        for name in imported(current):
            seen.add(name)
            target = resolve(name)
            if target is not None:
                todo.append(target)
    return frozenset(seen)


def hits(names: frozenset[str] | set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if any(n == f or n.startswith(f + ".") for f in forbidden))


@pytest.mark.parametrize("path", modules("aggregator.web"), ids=lambda p: module_name(p))
def test_the_web_package_never_imports_polling(path: Path) -> None:
    assert hits(set(imported(path)), NOT_FROM_WEB) == []


@pytest.mark.parametrize("path", [p for prefix in PURE for p in modules(prefix)], ids=lambda p: module_name(p))
def test_pure_modules_import_no_io_layer(path: Path) -> None:
    assert hits(reachable(path), IO_LAYERS) == []


def test_the_walls_can_fail(tmp_path: Path) -> None:
    """The checker sees an import inside a function, and one reached through another module."""
    bad = PACKAGE / "web" / "_layout_probe.py"
    bad.write_text("def f():\n    from aggregator.ingest.worker import Worker\n    return Worker\n")
    try:
        assert hits(set(imported(bad)), NOT_FROM_WEB) == ["aggregator.ingest.worker", "aggregator.ingest.worker.Worker"]
    finally:
        bad.unlink()
    assert "psycopg" in hits(reachable(PACKAGE / "ingest" / "pipeline.py"), IO_LAYERS)


def test_the_top_level_holds_at_most_eight_modules() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert len(top) <= 8, top
