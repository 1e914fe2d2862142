"""CLI entry functions for people tuning the taxonomy: `aggregator tag FILE|-` and `aggregator eval-tags`.

They return an exit code and write to `out`, so the argparse wiring in aggregator.cli stays one line each
and tests can call them directly. Exit codes: 0 success, 2 unusable input (missing file, bad JSON),
3 bad taxonomy (ConfigError).
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from aggregator.errors import ConfigError
from aggregator.tagging.evaluate import evaluate, format_report
from aggregator.tagging.records import Tag, TagInput
from aggregator.tagging.tagger import tag_post
from aggregator.tagging.taxonomy import Taxonomy, load_taxonomy

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_BAD_TAXONOMY = 3


class _InputError(Exception):
    pass


def _read(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise _InputError(f"cannot read {source}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise _InputError(f"{source} is not UTF-8 text: {exc}") from exc


def parse_post(raw: str) -> TagInput:
    """A JSON object with title/text (and optional labels), or plain text whose first non-empty line is the title."""
    stripped = raw.lstrip()
    if stripped.startswith("{"):
        try:
            obj = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise _InputError(f"input looks like JSON but is not valid: {exc}") from exc
        if not isinstance(obj, dict):
            raise _InputError("JSON input must be an object with title and text")
        labels = obj.get("labels") or ()
        return TagInput(title=str(obj.get("title") or ""), text=str(obj.get("text") or ""),
                        labels=tuple(str(x) for x in labels))
    lines = raw.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        return TagInput(title="", text="")
    return TagInput(title=lines[first].strip(), text="\n".join(lines[first + 1 :]))


def _tag_json(tags: Sequence[Tag]) -> list[dict[str, Any]]:
    return [{"kind": t.kind, "code": t.code, "role": t.role, "score": t.score,
             "evidence": [{"field": e.field, "start": e.start, "end": e.end, "phrase": e.phrase,
                           "rule": e.rule, "weight": e.weight} for e in t.evidence]} for t in tags]


def _tag_lines(tags: Sequence[Tag], taxonomy: Taxonomy) -> Iterator[str]:
    for t in tags:
        name = taxonomy.countries.get(t.code) if t.kind == "country" else taxonomy.topics.get(t.code)
        role = f" {t.role}" if t.role else ""
        yield f"{t.kind:7} {t.code:20} {t.score:7.2f}{role}  ({name})"
        for e in t.evidence:
            yield f"          {e.field}[{e.start}:{e.end}] {e.phrase!r}  rule={e.rule} weight={e.weight:g}"


def _exit_codes(run: Callable[..., int]) -> Callable[..., int]:
    """Bad input and a bad taxonomy end a command with one clear line and their own exit status."""

    @functools.wraps(run)
    def guarded(*args: Any, **kwargs: Any) -> int:
        try:
            return run(*args, **kwargs)
        except _InputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except ConfigError as exc:
            print(f"taxonomy error: {exc}", file=sys.stderr)
            return EXIT_BAD_TAXONOMY

    return guarded


@_exit_codes
def run_tag(source: str, *, as_json: bool, out: TextIO = sys.stdout) -> int:
    """Tag one post read from a file (or "-" for stdin) and print its tags with their evidence."""
    post = parse_post(_read(source))
    taxonomy = load_taxonomy()
    tags = tag_post(post, taxonomy)
    if as_json:
        json.dump({"taxonomy_version": taxonomy.version, "tags": _tag_json(tags)}, out, ensure_ascii=False)
        out.write("\n")
    else:
        out.write(f"title: {post.title}\ntaxonomy: {taxonomy.version}\n")
        out.write("\n".join(_tag_lines(tags, taxonomy)) or "(no tags)")
        out.write("\n")
    return EXIT_OK


def _records(path: str) -> list[dict[str, Any]]:
    records = []
    for number, line in enumerate(_read(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _InputError(f"{path}:{number}: not a JSON object: {exc}") from exc
        if not isinstance(record, dict):
            raise _InputError(f"{path}:{number}: expected a JSON object")
        records.append(record)
    return records


@_exit_codes
def run_eval(path: str, *, as_json: bool, out: TextIO = sys.stdout) -> int:
    """Evaluate the tagger on a labeled JSON-lines file; print a report or one JSON object."""
    records = _records(path)
    taxonomy = load_taxonomy()
    result = evaluate(records, taxonomy)
    if as_json:
        json.dump(result, out, ensure_ascii=False)
        out.write("\n")
    else:
        out.write(format_report(result) + "\n")
    return EXIT_OK
