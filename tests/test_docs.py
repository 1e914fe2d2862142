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
