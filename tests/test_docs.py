"""Docs that cannot drift: README carries every setting and every command the code has."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from aggregator.cli import build_parser, settings_table

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text("utf-8")


def test_readme_settings_table_is_generated_from_the_code() -> None:
    match = re.search(r"<!-- settings:start -->\n(.*?)\n<!-- settings:end -->", README, re.S)
    assert match, "README lacks the settings markers"
    assert match.group(1).strip() == settings_table().strip(), (
        "README's settings table is stale: paste the output of `aggregator settings --markdown`")


def _commands(parser: argparse.ArgumentParser, prefix: str = "aggregator") -> list[str]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append(f"{prefix} {name}")
                found.extend(_commands(sub, f"{prefix} {name}"))
    return found


def test_readme_names_every_command() -> None:
    leaves = [c for c in _commands(build_parser()) if c != "aggregator feeds"]
    missing = [c for c in leaves if f"`{c}" not in README and f"/ `{c.split()[-1]}" not in README]
    assert not missing, f"commands missing from README: {missing}"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    blocks = re.findall(r"```sh\n(.*?)\n```", README, re.S)
    assert len(blocks) >= 2
    ci = (ROOT / ".ci" / "run").read_text("utf-8")
    assert blocks[1].strip() in ci.splitlines()


ARCHITECTURE = (ROOT / "docs" / "ARCHITECTURE.md").read_text("utf-8")
_PATH = re.compile(r"(?<![\w/.])((?:[a-z_]+/)*[a-z_]+(?:\.py|/))(?![\w])")
_DOTTED = re.compile(r"`((?:db|ingest|web|digest|tagging|feeds_out|sources)(?:\.[A-Za-z_]+)+)`")


def architecture_paths(text: str) -> set[str]:
    """Module files and folders the page names (`ingest/fetch.py`, `web/`, `db/migrations/`)."""
    return {m for m in _PATH.findall(text) if not m.startswith(("config/", "docs/", "tests/"))}


def test_architecture_names_only_modules_that_exist() -> None:
    package = ROOT / "aggregator"
    named = architecture_paths(ARCHITECTURE)
    assert len(named) > 30, "the page should name the modules it describes"
    missing = sorted(p for p in named if not (package / p).exists() and not (ROOT / p).exists())
    assert not missing, f"docs/ARCHITECTURE.md names modules that do not exist: {missing}"
    for dotted in _DOTTED.findall(ARCHITECTURE):
        module, _, name = dotted.rpartition(".")
        path = package.joinpath(*module.split(".")).with_suffix(".py")
        if not path.exists():
            path = package.joinpath(*module.split("."), "__init__.py")
        assert path.exists() and re.search(rf"\b(class|def)\s+{name}\b|^{name}\s*[:=]", path.read_text("utf-8"),
                                           re.M), f"docs/ARCHITECTURE.md names {dotted}, which does not exist"


def test_the_architecture_check_catches_a_stale_name() -> None:
    assert "ingest/fetch.py" in architecture_paths("see `ingest/fetch.py` and web/")
    assert "pipeline.py" in architecture_paths("`pipeline.py` does it")
    assert not (ROOT / "aggregator" / "pipeline.py").exists()  # so that name, left on the page, would fail
