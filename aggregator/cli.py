"""The `aggregator` command: thin commands over the service modules.

Each command builds Settings once and passes them down; errors of the aggregator's own tree are
printed as one clear line with exit status 1 (2 for usage errors).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from aggregator.config import Settings, describe_settings, load_settings
from aggregator.db.sources import SourceHealth
from aggregator.errors import AggregatorError, NotFoundError
from aggregator.logs import setup_logging

log = logging.getLogger("aggregator")

Command = Callable[[argparse.Namespace, Settings], int]


# --- building blocks -------------------------------------------------------------------------

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
    from aggregator.scheduler import build_scheduler, stop_on_signals
    from aggregator.service import Runtime, sync_feeds_file
    from aggregator.worker import Worker

    with Runtime(settings) as rt:
        if settings.sync_feeds_file and settings.feeds_file.exists():
            sync_feeds_file(rt.db, settings)
        worker = Worker(rt.db, rt.pipeline, settings)
        scheduler = build_scheduler(worker, rt.db, settings, blocking=True)
        stop_on_signals(scheduler, worker)
        log.info("worker.started name=%s concurrency=%d tick=%ss", worker.name, worker.capacity,
                 settings.tick_seconds)
        try:
            scheduler.start()
        finally:
            worker.shutdown()
            log.info("worker.stopped name=%s", worker.name)
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from aggregator.web.server import run_with_worker

    return run_with_worker(settings)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from aggregator.web.server import serve

    return serve(settings)


def cmd_poll(args: argparse.Namespace, settings: Settings) -> int:
    from aggregator.db import sources as sources_db
    from aggregator.service import Runtime
    from aggregator.worker import Worker

    with Runtime(settings) as rt:
        urls = args.feed or None
        if urls:
            with rt.db.connection() as conn:
                known = [sources_db.get_by_url(conn, u) for u in urls]
            missing = [u for u, s in zip(urls, known, strict=True) if s is None]
            if missing:
                raise NotFoundError("feed", ", ".join(missing))
            urls = [s.url for s in known if s]
        worker = Worker(rt.db, rt.pipeline, settings)
        try:
            outcomes = worker.poll_now(urls, every_feed=args.all)
        finally:
            worker.shutdown()
    for outcome in outcomes:
        print(outcome.describe())
        for warning in outcome.warnings[:5]:
            print(f"    warning: {warning}")
    failed = sum(o.outcome == "error" for o in outcomes)
    new = sum(o.new_posts for o in outcomes)
    print(f"polled {len(outcomes)} feed(s): {new} new post(s), {failed} failed")
    return 0


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from aggregator.backfill import backfill
    from aggregator.db import sources as sources_db
    from aggregator.db.sources import SourceSpec
    from aggregator.feeds_file import check_url

    url = check_url(args.url, "backfill")
    from aggregator.backfill import BackfillReport
    from aggregator.service import Runtime

    with Runtime(settings) as rt:
        with rt.db.connection() as conn:
            source = sources_db.get_by_url(conn, url)
            if source is None:
                source, _ = sources_db.add(conn, SourceSpec(url), origin="cli",
                                           poll_interval=settings.default_interval)
        bar = tqdm(unit="post", desc="backfill", disable=args.quiet)

        def progress(report: BackfillReport) -> None:
            bar.total = report.total or bar.total
            bar.n = report.entries
            bar.set_postfix(pages=report.pages, new=report.new_posts)
            bar.refresh()

        report = backfill(rt.db, rt.fetcher, rt.parse, source, page_size=args.page_size, progress=progress,
                          taxonomy_dir=str(settings.taxonomy_dir) if settings.taxonomy_dir else None)
        bar.close()
    print(f"backfilled {url}: {report.pages} page(s), {report.entries} entries, "
          f"{report.new_posts} new, {report.updated_posts} updated")
    return 0


def cmd_tag(args: argparse.Namespace, settings: Settings) -> int:
    from aggregator.tagging.commands import run_tag

    return run_tag(args.file, as_json=args.json)


def cmd_eval_tags(args: argparse.Namespace, settings: Settings) -> int:
    from aggregator.tagging.commands import run_eval

    return run_eval(args.file, as_json=args.json)


def cmd_retag(args: argparse.Namespace, settings: Settings) -> int:
    import os
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    from aggregator.retag import count_posts, retag
    from aggregator.service import open_checked_database

    since = _parse_date(args.since) if args.since else None
    processes = settings.parse_processes or os.cpu_count() or 1
    taxonomy_dir = str(settings.taxonomy_dir) if settings.taxonomy_dir else None
    with open_checked_database(settings, max_size=2) as db:
        total = count_posts(db, since)
        bar = tqdm(total=total, unit="post", desc="retag", disable=args.quiet)

        def progress(done: int) -> None:
            bar.update(done - bar.n)

        executor = ProcessPoolExecutor(processes) if processes > 1 else None
        try:
            done = retag(db, since=since, taxonomy_dir=taxonomy_dir, executor=executor,
                         batch_size=args.batch_size, progress=progress)
        finally:
            if executor:
                executor.shutdown(cancel_futures=True)
        bar.close()
    print(f"re-tagged {done} post(s)")
    return 0


def _parse_date(text: str) -> datetime:
    from aggregator.errors import InvalidQueryError

    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidQueryError("--since", f"not an ISO date or date-time: {text!r}") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def cmd_feeds_add(args: argparse.Namespace, settings: Settings) -> int:
    from aggregator.db import sources as sources_db
    from aggregator.db.sources import SourceSpec
    from aggregator.feeds_file import check_url
    from aggregator.service import open_checked_database

    spec = SourceSpec(check_url(args.url, "feeds add"), args.name, tuple(args.country or ()), tuple(args.topic or ()))
    with open_checked_database(settings, max_size=2) as db, db.connection() as conn:
        source, created = sources_db.add(conn, spec, origin="cli", poll_interval=settings.default_interval)
    print(f"{'added' if created else 'updated'} feed {source.id}: {source.url}")
    return 0


def cmd_feeds_remove(args: argparse.Namespace, settings: Settings) -> int:
    from aggregator.db import sources as sources_db
    from aggregator.service import open_checked_database

    with open_checked_database(settings, max_size=2) as db, db.connection() as conn:
        source = sources_db.get_by_url(conn, args.url)
        if source is None:
            raise NotFoundError("feed", args.url)
        if args.purge:
            sources_db.delete(conn, source.id)
            print(f"deleted feed {source.id}: {source.url} (its posts are kept)")
        else:
            sources_db.disable(conn, source.id, "removed by a user")
            print(f"disabled feed {source.id}: {source.url} (use --purge to delete it)")
    return 0


def cmd_feeds_list(args: argparse.Namespace, settings: Settings) -> int:
    from aggregator.db import sources as sources_db
    from aggregator.service import open_checked_database

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
              f"{s.display_name} <{s.url}>")
        if s.consecutive_failures and s.last_error:
            print(f"{'':6}last error ({_fmt_time(s.last_error_at)}, {s.consecutive_failures} in a row): "
                  f"{s.last_error_kind}: {s.last_error[:160]}")
        if not s.enabled and s.disabled_reason:
            print(f"{'':6}disabled: {s.disabled_reason}")
    return 0


def _health_json(row: SourceHealth) -> dict[str, object]:
    s = row.source
    return {
        "id": s.id, "url": s.url, "name": s.display_name, "enabled": s.enabled,
        "disabled_reason": s.disabled_reason, "last_success_at": s.last_success_at,
        "last_error_at": s.last_error_at, "last_error_kind": s.last_error_kind, "last_error": s.last_error,
        "consecutive_failures": s.consecutive_failures, "next_poll_at": s.next_poll_at,
        "poll_interval": s.poll_interval, "posts": row.posts_count,
    }


def cmd_feeds_import(args: argparse.Namespace, settings: Settings) -> int:
    from aggregator.db import sources as sources_db
    from aggregator.feeds_file import read_opml
    from aggregator.service import open_checked_database

    specs = read_opml(Path(args.file).read_bytes())
    added = 0
    with open_checked_database(settings, max_size=2) as db, db.connection() as conn:
        for spec in specs:
            _, created = sources_db.add(conn, spec, origin="opml", poll_interval=settings.default_interval)
            added += created
    print(f"imported {len(specs)} feed(s) from {args.file}: {added} new, {len(specs) - added} already known")
    return 0


def cmd_feeds_export(args: argparse.Namespace, settings: Settings) -> int:
    from aggregator.db import sources as sources_db
    from aggregator.feeds_file import write_opml
    from aggregator.service import open_checked_database

    with open_checked_database(settings, max_size=2) as db, db.connection() as conn:
        rows = sources_db.list_with_health(conn, include_disabled=args.all)
    data = write_opml((r.source.url, r.source.display_name, r.source.site_url) for r in rows)
    if args.output and args.output != "-":
        Path(args.output).write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
    return 0


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

    add("run", cmd_run, "Run the service: the polling scheduler, digest sending and the web server.")
    add("serve", cmd_serve, "Run only the web server (REST API, filtered feeds, subscription pages).")
    add("worker", cmd_worker, "Run only the scheduler: polling and digests (several may share one database).")
    add("migrate", cmd_migrate, "Apply pending database migrations.")
    p = add("settings", cmd_settings, "List every setting with its environment variable, default and help.")
    p.add_argument("--markdown", action="store_true", help="Print the Markdown table README carries.")
    p = add("poll", cmd_poll, "Poll once, now, and print what happened.")
    p.add_argument("--feed", action="append", metavar="URL", help="Poll this feed, due or not (repeatable).")
    p.add_argument("--all", action="store_true", help="Poll every enabled feed, due or not.")
    p = add("backfill", cmd_backfill, "Page through a feed's archive (Blogger: start-index/max-results).")
    p.add_argument("url", help="Feed URL (added as a source if new).")
    p.add_argument("--page-size", type=int, default=100, help="Posts requested per page (default 100).")
    p.add_argument("--quiet", action="store_true", help="No progress bar.")

    p = add("tag", cmd_tag, "Print the country/topic tags and their evidence for a text (for tuning the taxonomy).")
    p.add_argument("file", help="A text file (first line: title) or a JSON object with title/text; - for stdin.")
    p.add_argument("--json", action="store_true", help="Print JSON.")
    p = add("eval-tags", cmd_eval_tags, "Measure the tagger against labeled articles (JSON lines).")
    p.add_argument("file", help="Labeled articles: id, title, text, countries_mentioned, countries_primary, topics.")
    p.add_argument("--json", action="store_true", help="Print one JSON object with the metrics.")
    p = add("retag", cmd_retag, "Re-tag stored posts after a taxonomy change (in batches, beside running workers).")
    p.add_argument("--since", help="Only posts published on or after this date (ISO 8601).")
    p.add_argument("--batch-size", type=int, default=500, help="Posts per batch (default 500).")
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
    p.add_argument("url")
    p.add_argument("--purge", action="store_true", help="Delete the feed itself, not only disable it.")
    p = fadd("import-opml", cmd_feeds_import, "Add the feeds of an OPML file.")
    p.add_argument("file")
    p = fadd("export-opml", cmd_feeds_export, "Write the feeds as OPML.")
    p.add_argument("-o", "--output", help="File to write (default: standard output).")
    p.add_argument("--all", action="store_true", help="Include disabled feeds.")

    from aggregator.digest.commands import add_cli as add_digest_cli

    add_digest_cli(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except Exception as exc:  # pydantic's ValidationError: a bad environment value
        print(f"aggregator: invalid settings: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings.log_format)
    try:
        return args.func(args, settings)
    except AggregatorError as exc:
        print(f"aggregator: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
