"""Every command, given bad input, ends with one clear line on stderr and its documented exit
status (README: 0 ok, 1 error, 2 usage or invalid setting, 130 interrupted), never a traceback.

Each case runs the real `python -m aggregator` in a process of its own, as a user would. Besides
the bad inputs listed here, every command the parser knows is run with an unknown option, so a
command added later is covered by at least that.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.cli import build_parser

PROJECT = Path(__file__).resolve().parents[1]
DEEP = 100_000

# name -> (arguments, extra environment, exit status, what stderr says)
BAD_INPUT: dict[str, tuple[list[str], dict[str, str], int, str]] = {
    "opml file missing": (["feeds", "import-opml", "missing.opml"], {}, 1,
                          "cannot read OPML file missing.opml: No such file or directory"),
    "opml is a folder": (["feeds", "import-opml", "."], {}, 1, "cannot read OPML file .: Is a directory"),
    "opml nested 100,000 deep": (["feeds", "import-opml", "deep.opml"], {}, 1, "more than 20000 outlines"),
    "opml nested 100,000 deep, cap raised": (["feeds", "import-opml", "deep.opml"],
                                             {"AGGREGATOR_OPML_MAX_OUTLINES": "200000"}, 0, ""),
    "opml not xml": (["feeds", "import-opml", "garbage.opml"], {}, 1, "not a valid OPML file"),
    "opml of html": (["feeds", "import-opml", "page.opml"], {}, 1, "not an OPML file"),
    "export to a missing folder": (["feeds", "export-opml", "-o", "no/such/dir/x.opml"], {}, 1,
                                   "cannot write no/such/dir/x.opml"),
    "feeds add, space in host": (["feeds", "add", "http://exa mple.org/"], {}, 1, "whitespace"),
    "feeds add, port out of range": (["feeds", "add", "http://127.0.0.1:99999/"], {}, 1, "Port out of range"),
    "feeds add, credentials": (["feeds", "add", "http://user:pass@example.org/x"], {}, 1, "user name or password"),
    "feeds add, unknown country": (["feeds", "add", "https://example.org/f", "--country", "XX"], {}, 1,
                                   "countries: unknown code 'XX'"),
    "feeds remove, unknown": (["feeds", "remove", "https://never.example/"], {}, 1, "feed not found"),
    "poll, unknown feed": (["poll", "--feed", "https://never.example/"], {}, 1, "feed not found"),
    "poll, bad wait": (["poll", "--wait", "soon"], {}, 2, "invalid float value"),
    "poll, wait without a feed": (["poll", "--wait"], {}, 1, "--wait: waits for the feeds named with --feed"),
    "backfill, bad url": (["backfill", "ftp://example.org/"], {}, 1, "not an http(s) URL"),
    "backfill, zero page size": (["backfill", "https://example.org/", "--page-size", "0"], {}, 2,
                                 "must be at least 1"),
    "retag, bad date": (["retag", "--since", "yesterday"], {}, 1, "not an ISO date"),
    "retag, zero batch": (["retag", "--batch-size", "0"], {}, 2, "must be at least 1"),
    "tag, missing file": (["tag", "missing.txt"], {}, 2, "cannot read missing.txt"),
    "eval-tags, missing file": (["eval-tags", "missing.jsonl"], {}, 2, "cannot read missing.jsonl"),
    "subscriptions add, bad email": (["subscriptions", "add", "not-an-address"], {}, 1, "email"),
    "digest preview, unknown": (["digest", "preview", "--subscription", "424242"], {}, 1, "not found"),
    "serve, bad port setting": (["serve"], {"AGGREGATOR_HTTP_PORT": "eighty"}, 2, "invalid settings"),
    "bad log level": (["settings"], {"AGGREGATOR_LOG_LEVEL": "LOUD"}, 2, "invalid settings"),
    "no command": ([], {}, 2, "required: COMMAND"),
}


def leaf_commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                has_sub = any(isinstance(a, argparse._SubParsersAction) for a in sub._actions)
                yield from leaf_commands(sub, (*prefix, name)) if has_sub else [(*prefix, name)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli-errors")
    (folder / "deep.opml").write_text('<opml version="2.0"><body>' + '<outline text="f">' * (DEEP - 1)
                                      + '<outline text="inner" xmlUrl="https://deep.example/feed"/>'
                                      + "</outline>" * (DEEP - 1) + "</body></opml>")
    (folder / "garbage.opml").write_bytes(bytes(range(256)))
    (folder / "page.opml").write_text('<html><body><outline xmlUrl="https://a.example/"/></body></html>')
    return folder


def run_cli(args: list[str], env: dict[str, str], cwd: Path, database_url: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AGGREGATOR_") and k != "DATABASE_URL"}
    base.update({"DATABASE_URL": database_url, "PYTHONPATH": str(PROJECT), "AGGREGATOR_LOG_LEVEL": "WARNING",
                 "AGGREGATOR_PARSE_PROCESSES": "1", "AGGREGATOR_DATA_DIR": str(cwd / "var"),
                 "AGGREGATOR_FEEDS_FILE": str(cwd / "feeds.yaml"), **env})
    return subprocess.run([sys.executable, "-m", "aggregator", *args], env=base, cwd=cwd, text=True,
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=120)


def assert_one_clear_line(result: subprocess.CompletedProcess[str], status: int, says: str) -> None:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == status, output
    if status == 0:
        return
    lines = result.stderr.strip().splitlines()
    if status == 2 and lines and lines[0].startswith("usage:"):  # argparse: usage, then the one error line
        lines = [line for line in lines if ": error: " in line]
    assert len(lines) == 1, result.stderr
    assert says in lines[0], result.stderr


@pytest.mark.parametrize(("args", "env", "status", "says"), BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_is_one_line_and_an_exit_status(args: list[str], env: dict[str, str], status: int, says: str,
                                                   workdir: Path, database_url: str) -> None:
    assert_one_clear_line(run_cli(args, env, workdir, database_url), status, says)


@pytest.mark.parametrize("command", [" ".join(c) for c in leaf_commands(build_parser())])
def test_every_command_refuses_an_unknown_option_as_a_usage_error(command: str, workdir: Path,
                                                                  database_url: str) -> None:
    result = run_cli([*command.split(), "--no-such-option"], {}, workdir, database_url)
    assert_one_clear_line(result, 2, ": error: ")
