"""The `aggregator` command: thin commands over the service modules.

Each command builds Settings once and passes them down. A command never ends in a traceback:
errors are printed as one clear line on stderr, with the exit statuses README documents
(0 ok, 1 error, 2 usage or invalid setting, 130 interrupted).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from aggregator.config import Settings, describe_settings, load_settings
from aggregator.db import Database
from aggregator.db.sources import Availability, Source, SourceHealth
from aggregator.errors import AggregatorError, ConfigError, InvalidQueryError, NotFoundError, first_line
from aggregator.logs import setup_logging
from aggregator.sources.urls import MASK, redact_text, redact_url

if TYPE_CHECKING:
    from aggregator.ingest.pipeline import PollOutcome
    from aggregator.ingest.worker import Worker

log = logging.getLogger("aggregator")

Command = Callable[[argparse.Namespace, Settings], int]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


# --- building blocks -------------------------------------------------------------------------

def _positive_int(text: str) -> int:
    """An argparse type: a count that must be at least 1 (a usage error otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _fmt_time(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


# --- commands --------------------------------------------------------------------------------

def cmd_settings(args: argparse.Namespace, settings: Settings) -> int:
    if args.markdown:
        print(settings_table())
        return 0
    for env, default, help_text in describe_settings():
        print(f"{env}\n    {help_text}\n    default: {default or '(unset)'}")
    return 0


def settings_table() -> str:
    """The Markdown table README carries between its settings markers."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for env, default, help_text in describe_settings():
        lines.append(f"| `{env}` | {f'`{default}`' if default else '(unset)'} | {help_text} |")
    return "\n".join(lines)


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from aggregator.db import migrate as migrate_db
    from aggregator.db import open_database

    with open_database(settings, max_size=2) as db, db.autocommit_connection() as conn:
        applied = migrate_db.migrate(conn)
        version = migrate_db.current_version(conn)
    print(f"applied {len(applied)} migration(s); schema version {version}")
    for name in applied:
        print(f"  {name}")
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from aggregator.runtime import run_worker

    return run_worker(settings)


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from aggregator.runtime import run_all

    return run_all(_listen_flags(args, settings))


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from aggregator.runtime import run_web

    return run_web(_listen_flags(args, settings))


def _listen_flags(args: argparse.Namespace, settings: Settings) -> Settings:
    """--host and --port over AGGREGATOR_HTTP_HOST and AGGREGATOR_HTTP_PORT."""
    update = {name: value for name, value in (("http_host", args.host), ("http_port", args.port))
              if value is not None}
    return settings.model_copy(update=update) if update else settings


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number (0-65535): {text!r}")
    return port


def cmd_db_stop(args: argparse.Namespace, settings: Settings) -> int:
    from aggregator.db import embedded

    pgdata = settings.embedded_pgdata()
    result = embedded.stop(pgdata, force=args.force)
    if result.server_pid is None:
        print(f"no embedded PostgreSQL is running in {pgdata}")
    elif result.stopped:
        print(f"stopped the embedded PostgreSQL in {pgdata} (pid {result.server_pid})")
    else:
        pids = ", ".join(str(pid) for pid in result.users)
        print(f"aggregator: the embedded PostgreSQL in {pgdata} is in use by {len(result.users)} aggregator "
              f"process(es) (pid {pids}): stop them first, or use --force", file=sys.stderr)
        return 1
    return 0


def cmd_poll(args: argparse.Namespace, settings: Settings) -> int:
    from aggregator.runtime import Ingest

    if args.wait is not None and not args.feed:
        raise InvalidQueryError("--wait", "waits for the feeds named with --feed")
    skipped: list[Availability] = []
    with Ingest(settings) as rt:
        named = _known_sources(rt.db, args.feed) if args.feed and not args.all else None
        worker = rt.worker()
        try:
            if named is None:
                outcomes = worker.poll_now(every_feed=args.all)
            else:
                outcomes, skipped = _poll_named(rt.db, worker, named, wait=args.wait)
        finally:
            worker.shutdown()
    for outcome in outcomes:
        print(redact_text(outcome.describe()))
        for warning in outcome.warnings[:5]:
            print(f"    warning: {redact_text(warning)}")
    for state in skipped:
        print(f"skipped {redact_url(state.url)}: {_why_not_polled(state)}")
    failed = sum(o.outcome == "error" for o in outcomes)
    new = sum(o.new_posts for o in outcomes)
    print(f"polled {len(outcomes)} feed(s): {new} new post(s), {failed} failed"
          + (f", {len(skipped)} skipped" if skipped else ""))
    return EXIT_ERROR if skipped else EXIT_OK


def _known_sources(db: Database, urls: Sequence[str]) -> list[Source]:
    from aggregator.db import sources as sources_db

    with db.connection() as conn:
        known = [sources_db.get_by_url(conn, u) for u in urls]
    missing = [u for u, s in zip(urls, known, strict=True) if s is None]
    if missing:
        raise NotFoundError("feed", ", ".join(redact_url(u) for u in missing))
    return [s for s in known if s]


POLL_WAIT_STEP = 0.25


def _poll_named(db: Database, worker: Worker, sources: list[Source],
                *, wait: float | None) -> tuple[list[PollOutcome], list[Availability]]:
    """Poll the named feeds now; return the outcomes and why each feed not polled was not.

    A feed another worker holds is polled once its lease ends when `wait` is given: 0 waits as
    long as the lease runs, more waits at most that many seconds. The leases are read again on
    every try, so a worker that finishes early frees the feed early.
    """
    from aggregator.db import sources as sources_db

    outcomes: list[PollOutcome] = []
    pending = {s.id: s.url for s in sources}
    deadline: float | None = None
    while True:
        polled = worker.poll_now(list(pending.values()))
        outcomes.extend(polled)
        for outcome in polled:
            pending.pop(outcome.source_id, None)
        if not pending:
            return outcomes, []
        with db.connection() as conn:
            states = sources_db.availability(conn, list(pending))
        pending = {a.id: a.url for a in states}
        leased = [a for a in states if a.enabled and a.lease_owner]
        if deadline is None:
            longest = max((a.lease_seconds_left for a in leased), default=0.0)
            deadline = time.monotonic() + (0.0 if wait is None else (wait or longest + 2 * POLL_WAIT_STEP))
        if not pending or not any(a.enabled for a in states) or time.monotonic() >= deadline:
            return outcomes, states
        time.sleep(min(POLL_WAIT_STEP, max(0.0, deadline - time.monotonic())))


def _why_not_polled(state: Availability) -> str:
    if not state.enabled:
        return f"disabled ({redact_text(state.disabled_reason or 'no reason recorded')}); `feeds add` re-enables it"
    if state.lease_owner and state.lease_until:
        until = state.lease_until.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return (f"leased by worker {state.lease_owner} until {until} (polling it, or stopped without "
                "freeing it); --wait polls it when the lease ends")
    return "not claimed (another worker took it and let it go meanwhile); try again"


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from aggregator.db import sources as sources_db
    from aggregator.ingest.backfill import BackfillReport, backfill
    from aggregator.ingest.story_stage import params_from
    from aggregator.runtime import Ingest
    from aggregator.sources.registry import add_source, load_vocabulary
    from aggregator.sources.spec import SourceInput
    from aggregator.sources.urls import check_feed_url

    url = check_feed_url(args.url)
    with Ingest(settings) as rt:
        with rt.db.connection() as conn:
            source = sources_db.get_by_url(conn, url)
            if source is None:
                source, _ = add_source(conn, SourceInput(url), origin="cli", vocabulary=load_vocabulary(settings),
                                       poll_interval=settings.default_interval)
        bar = tqdm(unit="post", desc="backfill", disable=args.quiet)

        def progress(report: BackfillReport) -> None:
            bar.total = report.total or bar.total
            bar.n = report.entries
            bar.set_postfix(pages=report.pages, new=report.new_posts)
            bar.refresh()

        report = backfill(rt.db, rt.fetcher, rt.parse, source, page_size=args.page_size, progress=progress,
                          taxonomy_dir=str(settings.taxonomy_dir) if settings.taxonomy_dir else None,
                          story_params=params_from(settings) if settings.stories else None)
        bar.close()
    print(f"backfilled {redact_url(url)}: {report.pages} page(s), {report.entries} entries, "
          f"{report.new_posts} new, {report.updated_posts} updated")
    return 0


def cmd_tag(args: argparse.Namespace, settings: Settings) -> int:
    from aggregator.tagging.commands import run_tag

    return run_tag(args.file, as_json=args.json)


def cmd_eval_tags(args: argparse.Namespace, settings: Settings) -> int:
    from aggregator.tagging.commands import run_eval

    return run_eval(args.file, as_json=args.json, cv=args.cv)


def cmd_fit_topics(args: argparse.Namespace, settings: Settings) -> int:
    from aggregator.tagging.commands import run_fit

    return run_fit(args.files, output=args.output)


def cmd_eval_stories(args: argparse.Namespace, settings: Settings) -> int:
    from aggregator.stories.commands import run_eval_stories

    return run_eval_stories(args.file, as_json=args.json, window_hours=settings.story_window_hours,
                            threshold=settings.story_threshold)
def cmd_taxonomy_forms(args: argparse.Namespace, settings: Settings) -> int:
    from aggregator.tagging.taxonomy import write_russian_forms

    path, stale = write_russian_forms(settings.taxonomy_dir, check=args.check)
    if args.check:
        print(f"{path}: {'out of date' if stale else 'up to date'}")
        return 1 if stale else 0
    print(f"{path}: {'written' if stale else 'already up to date'}")
    return 0


def cmd_retag(args: argparse.Namespace, settings: Settings) -> int:
    import os

    from tqdm import tqdm

    from aggregator.ingest.parse_pool import process_pool
    from aggregator.ingest.retag import count_posts, retag
    from aggregator.runtime import open_checked_database

    since = _parse_date(args.since) if args.since else None
    processes = settings.parse_processes or os.cpu_count() or 1
    taxonomy_dir = str(settings.taxonomy_dir) if settings.taxonomy_dir else None
    with open_checked_database(settings, max_size=2) as db:
        total = count_posts(db, since)
        bar = tqdm(total=total, unit="post", desc="retag", disable=args.quiet)

        def progress(done: int) -> None:
            bar.update(done - bar.n)

        executor = process_pool(processes) if processes > 1 else None  # not forked: this process has threads
        try:
            done = retag(db, since=since, taxonomy_dir=taxonomy_dir, executor=executor,
                         batch_size=args.batch_size, progress=progress)
        finally:
            if executor:
                executor.shutdown(cancel_futures=True)
        bar.close()
    print(f"re-tagged {done} post(s)")
    return 0


def cmd_recluster(args: argparse.Namespace, settings: Settings) -> int:
    from aggregator.ingest.recluster import recluster
    from aggregator.ingest.story_stage import params_from
    from aggregator.runtime import open_checked_database

    since = _parse_date(args.since)
    with open_checked_database(settings, max_size=2) as db:
        done = recluster(db, since, params_from(settings))
    print(f"reclustered {done} post(s)")
    return 0


def _parse_date(text: str) -> datetime:
    from aggregator.errors import InvalidInputError

    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInputError("--since", f"not an ISO date or date-time: {text!r}") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def cmd_feeds_add(args: argparse.Namespace, settings: Settings) -> int:
    from aggregator.runtime import open_checked_database
    from aggregator.sources.registry import add_source, load_vocabulary
    from aggregator.sources.spec import SourceInput, check_feed_url, check_source

    given = SourceInput(args.url, args.name, args.country, args.topic)
    check_feed_url(given.url)  # a mistyped URL is refused at once, not after the taxonomy's seconds of loading
    vocabulary = load_vocabulary(settings)
    check_source(given, vocabulary)  # bad input is refused before the database is opened
    with open_checked_database(settings, max_size=2) as db, db.connection() as conn:
        source, created = add_source(conn, given, origin="cli", vocabulary=vocabulary,
                                     poll_interval=settings.default_interval)
    print(f"{'added' if created else 'updated'} feed {source.id}: {redact_url(source.url)}")
    return 0


def cmd_feeds_remove(args: argparse.Namespace, settings: Settings) -> int:
    from aggregator.db import sources as sources_db
    from aggregator.runtime import open_checked_database

    with open_checked_database(settings, max_size=2) as db, db.connection() as conn:
        by_id = args.url.isdigit() and len(args.url) < 19  # `feeds list` shows ids beside masked URLs
        source = sources_db.get(conn, int(args.url)) if by_id else sources_db.get_by_url(conn, args.url)
        if source is None:
            raise NotFoundError("feed", redact_url(args.url))
        if args.purge:
            sources_db.delete(conn, source.id)
            print(f"deleted feed {source.id}: {redact_url(source.url)} (its posts are kept)")
        else:
            sources_db.disable(conn, source.id, "removed by a user")
            print(f"disabled feed {source.id}: {redact_url(source.url)} (use --purge to delete it)")
    return 0


def cmd_feeds_list(args: argparse.Namespace, settings: Settings) -> int:
    from aggregator.db import sources as sources_db
    from aggregator.runtime import open_checked_database

    with open_checked_database(settings, max_size=2) as db, db.connection() as conn:
        rows = sources_db.list_with_health(conn)
    if args.json:
        print(json.dumps([_health_json(r) for r in rows], indent=2, default=str))
        return 0
    print(f"{'id':>4}  {'state':8}  {'last success':16}  {'next poll':16}  {'posts':>6}  feed")
    for row in rows:
        s = row.source
        state = "ok" if s.enabled and not s.consecutive_failures else ("failing" if s.enabled else "disabled")
        print(f"{s.id:>4}  {state:8}  {_fmt_time(s.last_success_at):16}  "
              f"{_fmt_time(s.next_poll_at) if s.enabled else '-':16}  {row.posts_count:>6}  "
              f"{redact_text(s.display_name)} <{redact_url(s.url)}>")
        if s.consecutive_failures and s.last_error:
            print(f"{'':6}last error ({_fmt_time(s.last_error_at)}, {s.consecutive_failures} in a row): "
                  f"{s.last_error_kind}: {redact_text(s.last_error)[:160]}")
        if not s.enabled and s.disabled_reason:
            print(f"{'':6}disabled: {redact_text(s.disabled_reason)}")
        for warning in s.last_warnings[:3]:
            print(f"{'':6}warning: {redact_text(warning)[:160]}")
    return 0


def _health_json(row: SourceHealth) -> dict[str, object]:
    s = row.source
    return {
        "id": s.id, "url": redact_url(s.url), "name": redact_text(s.display_name), "enabled": s.enabled,
        "disabled_reason": redact_text(s.disabled_reason) if s.disabled_reason else None,
        "last_success_at": s.last_success_at, "last_error_at": s.last_error_at,
        "last_error_kind": s.last_error_kind, "last_error": redact_text(s.last_error) if s.last_error else None,
        "consecutive_failures": s.consecutive_failures, "next_poll_at": s.next_poll_at,
        "poll_interval": s.poll_interval, "posts": row.posts_count, "last_warnings": s.last_warnings,
    }


def cmd_feeds_import(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from aggregator.runtime import open_checked_database
    from aggregator.sources.files import read_opml_file
    from aggregator.sources.registry import import_sources, load_vocabulary

    given = read_opml_file(Path(args.file), max_outlines=settings.opml_max_outlines)
    vocabulary = load_vocabulary(settings)
    bar = tqdm(total=len(given), unit="feed", desc="import", disable=not sys.stderr.isatty())
    with open_checked_database(settings, max_size=2) as db, bar:
        report = import_sources(db, given, origin="opml", vocabulary=vocabulary,
                                poll_interval=settings.default_interval, progress=lambda n: bar.update(n - bar.n))
    for rejected in report.rejected:
        print(f"rejected {rejected}", file=sys.stderr)
    print(report.summary(args.file))
    return EXIT_ERROR if report.rejected else EXIT_OK


def cmd_feeds_export(args: argparse.Namespace, settings: Settings) -> int:
    from aggregator.db import sources as sources_db
    from aggregator.runtime import open_checked_database
    from aggregator.sources.files import write_opml

    with open_checked_database(settings, max_size=2) as db, db.connection() as conn:
        rows = sources_db.list_with_health(conn, include_disabled=args.all)
    shown = (lambda url: url) if args.with_secrets else redact_url
    masked = sum(shown(r.source.url) != r.source.url for r in rows)
    data = write_opml((shown(r.source.url), redact_text(r.source.display_name), r.source.site_url) for r in rows)
    if args.output and args.output != "-":
        try:
            Path(args.output).write_bytes(data)
        except OSError as exc:
            raise ConfigError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
    else:
        sys.stdout.buffer.write(data)
    if masked:
        print(f"aggregator: {masked} feed URL(s) carry a key or token, written as {MASK}; "
              "--with-secrets writes them as they are", file=sys.stderr)
    return EXIT_OK


# --- parser ----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aggregator",
        description="Regional security news aggregator. Settings come from the environment: "
        "see `aggregator settings`.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    for p in (add("run", cmd_run, "Run the service: the polling scheduler, digest sending and the web server."),
              add("serve", cmd_serve, "Run only the web server (REST API, filtered feeds, subscription pages).")):
        p.add_argument("--host", help="Address to listen on (default: AGGREGATOR_HTTP_HOST).")
        p.add_argument("--port", type=_port, help="Port to listen on (default: AGGREGATOR_HTTP_PORT).")
    add("worker", cmd_worker, "Run only the scheduler: polling and digests (several may share one database).")
    add("migrate", cmd_migrate, "Apply pending database migrations.")
    p = add("settings", cmd_settings, "List every setting with its environment variable, default and help.")
    p.add_argument("--markdown", action="store_true", help="Print the Markdown table README carries.")
    p = add("poll", cmd_poll, "Poll once, now, and print what happened.")
    p.add_argument("--feed", action="append", metavar="URL", help="Poll this feed, due or not (repeatable).")
    p.add_argument("--all", action="store_true", help="Poll every enabled feed, due or not.")
    p.add_argument("--wait", nargs="?", type=float, const=0.0, metavar="SECONDS",
                   help="A --feed another worker is polling: wait until its lease ends (at most SECONDS), "
                        "then poll it.")
    p = add("backfill", cmd_backfill, "Page through a feed's archive (Blogger: start-index/max-results).")
    p.add_argument("url", help="Feed URL (added as a source if new).")
    p.add_argument("--page-size", type=_positive_int, default=100, help="Posts requested per page (default 100).")
    p.add_argument("--quiet", action="store_true", help="No progress bar.")

    p = add("tag", cmd_tag, "Print the country/topic tags and their evidence for a text (for tuning the taxonomy).")
    p.add_argument("file", help="A text file (first line: title) or a JSON object with title/text; - for stdin.")
    p.add_argument("--json", action="store_true", help="Print JSON.")
    p = add("eval-tags", cmd_eval_tags, "Measure the tagger against labeled articles (JSON lines).")
    p.add_argument("file", help="Labeled articles: id, title, text, countries_mentioned, countries_primary, topics.")
    p.add_argument("--json", action="store_true", help="Print one JSON object with the metrics.")
    p.add_argument("--cv", type=int, default=0, metavar="K",
                   help="Also report K-fold cross-validated topic figures (the model refitted without each fold).")
    p = add("fit-topics", cmd_fit_topics, "Fit the topic salience model on labeled articles (writes its YAML).")
    p.add_argument("files", nargs="+", help="Labeled JSON-lines files, as for eval-tags.")
    p.add_argument("--output", help="Where to write the model (default: the taxonomy's topic-model.yaml).")
    p = add("eval-stories", cmd_eval_stories, "Measure story clustering against articles labeled by event.")
    p.add_argument("file", help="Labeled articles (JSON lines): id, event, lang, date, title, text.")
    p.add_argument("--json", action="store_true", help="Print one JSON object with the metrics.")
    p = add("recluster", cmd_recluster, "Group stored posts into stories again, as ingest did (after a change).")
    p.add_argument("--since", required=True, help="Posts first seen on or after this date (ISO 8601).")
    p = add("taxonomy-forms", cmd_taxonomy_forms,
            "Regenerate the Russian inflected forms the taxonomy ships (defaults/taxonomy/ru/forms.json).")
    p.add_argument("--check", action="store_true", help="Only say whether the file is up to date (exit 1 if not).")
    p = add("retag", cmd_retag, "Re-tag stored posts after a taxonomy change (in batches, beside running workers).")
    p.add_argument("--since", help="Only posts published on or after this date (ISO 8601).")
    p.add_argument("--batch-size", type=_positive_int, default=500, help="Posts per batch (default 500).")
    p.add_argument("--quiet", action="store_true", help="No progress bar.")

    feeds = sub.add_parser("feeds", help="Manage feed sources.", description="Manage feed sources.")
    fsub = feeds.add_subparsers(dest="feeds_command", required=True, metavar="ACTION")

    def fadd(name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        p = fsub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    p = fadd("add", cmd_feeds_add, "Add a feed (or re-enable a removed one).")
    p.add_argument("url")
    p.add_argument("--name", help="Display name.")
    p.add_argument("--country", action="append", metavar="CC", help="Default country focus (repeatable).")
    p.add_argument("--topic", action="append", metavar="CODE", help="Default topic (repeatable).")
    p = fadd("list", cmd_feeds_list, "List feeds with health: last success, last error, next poll.")
    p.add_argument("--json", action="store_true", help="Print JSON.")
    p = fadd("remove", cmd_feeds_remove, "Disable a feed (its posts stay); --purge deletes the feed row.")
    p.add_argument("url", metavar="URL|ID", help="The feed's URL, or its id as `feeds list` shows it.")
    p.add_argument("--purge", action="store_true", help="Delete the feed itself, not only disable it.")
    p = fadd("import-opml", cmd_feeds_import, "Add the feeds of an OPML file.")
    p.add_argument("file")
    p = fadd("export-opml", cmd_feeds_export, "Write the feeds as OPML.")
    p.add_argument("-o", "--output", help="File to write (default: standard output).")
    p.add_argument("--all", action="store_true", help="Include disabled feeds.")
    p.add_argument("--with-secrets", action="store_true",
                   help="Write keys and tokens in feed URLs as they are (masked by default).")

    db = sub.add_parser("db", help="The embedded PostgreSQL (used when DATABASE_URL is unset).",
                        description="The embedded PostgreSQL (used when DATABASE_URL is unset).")
    dsub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    p = dsub.add_parser("stop", help="Stop the embedded PostgreSQL now (it also stops by itself once no "
                        "aggregator process uses it).", description="Stop the embedded PostgreSQL now.")
    p.set_defaults(func=cmd_db_stop)
    p.add_argument("--force", action="store_true",
                   help="Stop it even while aggregator processes use it (they lose their connections).")

    from aggregator.digest.commands import add_cli as add_digest_cli

    add_digest_cli(sub)
    return parser


def _settings_problems(exc: Exception) -> str:
    """pydantic's report on one line, naming the variables (never their values: one may be a
    password)."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return first_line(exc)
    problems = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "settings"
        problems.append(f"{name if name.isupper() else 'AGGREGATOR_' + name.upper()}: {error['msg']}")
    return "; ".join(problems)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # a usage error exits here with status 2
    try:
        settings = load_settings()
    except Exception as exc:  # pydantic's ValidationError: a bad environment value
        print(f"aggregator: invalid settings: {_settings_problems(exc)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        setup_logging(settings.log_level, settings.log_format)
    except ValueError as exc:  # an unknown level name
        print(f"aggregator: invalid settings: AGGREGATOR_LOG_LEVEL: {exc}", file=sys.stderr)
        return EXIT_USAGE
    previous = _exit_on_sigterm()
    try:
        return args.func(args, settings)
    except AggregatorError as exc:
        print(f"aggregator: {redact_text(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (`| head`): say nothing, and keep Python quiet at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except OSError as exc:  # a file or folder named on the command line
        where = f": {exc.filename}" if exc.filename else ""
        print(f"aggregator: {exc.strerror or first_line(exc)}{where}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a bug: one line here, the traceback in the log at DEBUG level
        log.debug("command.failed", exc_info=True)
        print(f"aggregator: unexpected error: {type(exc).__name__}: {redact_text(first_line(exc))} "
              "(AGGREGATOR_LOG_LEVEL=DEBUG shows where)", file=sys.stderr)
        return EXIT_ERROR
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm() -> Callable[[int, FrameType | None], object] | int | None:
    """SIGTERM ends a command the way SIGINT does: by an exception, so that what it opened is closed
    and exit hooks run (the embedded PostgreSQL's among them: a process killed outright stays
    counted as its user). The exit status is still 128 + 15. Commands that serve install their own
    graceful handlers on top. Returns the handler it replaced (None off the main thread)."""

    def terminate(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, terminate)


if __name__ == "__main__":
    sys.exit(main())
