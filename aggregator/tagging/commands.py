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
from aggregator.tagging.evaluate import evaluate, format_report, training_rows
from aggregator.tagging.records import KIND_COUNTRY, KIND_PLACE, Tag, TagInput
from aggregator.tagging.salience import fit, model_yaml
from aggregator.tagging.tagger import analyse, tag_post
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


def _tag_name(tag: Tag, taxonomy: Taxonomy) -> str | None:
    """The display name of a tag's code: a country's, a place's or a topic's."""
    if tag.kind == KIND_COUNTRY:
        return taxonomy.countries.get(tag.code)
    if tag.kind == KIND_PLACE:
        place = taxonomy.places.get(tag.code)
        return place.name if place else None
    return taxonomy.topics.get(tag.code)


def _tag_lines(tags: Sequence[Tag], taxonomy: Taxonomy) -> Iterator[str]:
    for t in tags:
        name = _tag_name(t, taxonomy)
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


_LIST_FIELDS = ("countries_mentioned", "countries_primary", "topics")


def _records(path: str) -> list[dict[str, Any]]:
    """Labeled records; a malformed line is an input error naming the file, the line and what is wrong."""
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
        for key in ("title", "text"):  # null: an excerpt that does not start with its headline
            if record.get(key) is not None and not isinstance(record[key], str):
                raise _InputError(f"{path}:{number}: `{key}` must be a string or null")
        for key in _LIST_FIELDS:
            value = record.get(key, [])
            if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
                raise _InputError(f"{path}:{number}: `{key}` must be a list of strings")
        records.append(record)
    return records


@_exit_codes
def run_eval(path: str, *, as_json: bool, cv: int = 0, out: TextIO = sys.stdout) -> int:
    """Evaluate the tagger on a labeled JSON-lines file; print a report or one JSON object.

    `cv` > 1 adds cross-validated figures of the fitted topic model beside the resubstitution ones.
    """
    if cv == 1 or cv < 0:
        raise _InputError("--cv needs at least 2 folds")
    records = _records(path)
    taxonomy = load_taxonomy()
    result = evaluate(records, taxonomy, cv=cv)
    write_result(result, format_report, as_json=as_json, out=out)
    return EXIT_OK


def write_result(result: dict[str, Any], report: Callable[[dict[str, Any]], str], *, as_json: bool,
                 out: TextIO) -> None:
    """An evaluation's figures as one JSON object, or as the human report (eval-tags, eval-stories)."""
    if as_json:
        json.dump(result, out, ensure_ascii=False)
        out.write("\n")
    else:
        out.write(report(result) + "\n")


@_exit_codes
def run_fit(paths: Sequence[str], *, output: str | None = None, out: TextIO = sys.stdout) -> int:
    """Fit the topic model on labeled files and write it where the taxonomy loads it from."""
    records = [r for path in paths for r in _records(path)]
    taxonomy = load_taxonomy()
    analysed = [analyse(TagInput(title=str(r.get("title") or ""), text=str(r.get("text") or "")), taxonomy)
                for r in records]
    model = fit(training_rows(records, analysed), list(taxonomy.topics))
    target = Path(output) if output else taxonomy.source / "topic-model.yaml"
    note = ("Topic salience model (see aggregator/tagging/salience.py), written by `aggregator fit-topics`\n"
            f"from {len(records)} labeled articles. Refit after changing topic phrases; do not edit by hand.")
    target.write_text(model_yaml(model, note), encoding="utf-8")
    out.write(f"wrote {target} ({len(records)} articles)\n")
    return EXIT_OK
