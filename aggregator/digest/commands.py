"""The digest's commands and its scheduler job.

    aggregator subscriptions add EMAIL [--country CC] [--region R] [--topic T] [--q WORDS]
                                       [--timezone Z] [--send-hour H] [--format html|text] [--confirmed]
    aggregator subscriptions list [--all] [--json]
    aggregator subscriptions remove ID|EMAIL
    aggregator digest preview --subscription ID [--text | --html | --eml] [-o FILE]
    aggregator digest send-due [--now]

`add_cli(subparsers)` registers them on aggregator.cli's parser. The scheduler's digest job is
wired in aggregator.runtime.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aggregator.config import Settings
from aggregator.db import Database
from aggregator.db import subscriptions as subs_db
from aggregator.digest.build import filter_label
from aggregator.digest.context import DigestContext
from aggregator.digest.delivery import preview, send_due
from aggregator.digest.schedule import next_send, zone
from aggregator.digest.subscribe import SubscriptionRequest, normalize_email, subscribe, unsubscribe
from aggregator.errors import NotFoundError

log = logging.getLogger(__name__)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """A stored value on one table line: control characters (a CR/LF in a filter's words, a
    terminal escape sequence) are shown escaped, as Python writes them, never sent to the terminal."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _open(settings: Settings) -> tuple[Database, DigestContext]:
    from aggregator.runtime import open_checked_database

    db = open_checked_database(settings, max_size=2)
    try:
        return db, DigestContext.create(settings, db)
    except BaseException:
        db.close()
        raise


def cmd_subscriptions_add(args: argparse.Namespace, settings: Settings) -> int:
    db, ctx = _open(settings)
    with db:
        req = SubscriptionRequest(email=args.email, countries=args.country or [], regions=args.region or [],
                                  topics=args.topic or [], q=args.q, timezone=args.timezone,
                                  send_hour=args.send_hour, format=args.format, origin="cli")
        sub, created = subscribe(ctx, req, confirmed=args.confirmed)
        if not args.confirmed:
            from aggregator.digest.delivery import send_confirmations
            from aggregator.digest.send import open_sender

            with open_sender(settings) as sender:
                send_confirmations(ctx, sender, datetime.now(UTC))
    print(f"{'added' if created else 'already there'}: subscription {sub.id} {printable(sub.email)} "
          f"[{printable(filter_label(sub.filter, ctx.labels))}] {sub.state}")
    return 0


def cmd_subscriptions_list(args: argparse.Namespace, settings: Settings) -> int:
    db, ctx = _open(settings)
    with db, db.connection() as conn:
        subs = subs_db.list_all(conn, include_ended=args.all)
        last = {c.id: c.last_period for c in subs_db.due_candidates(conn)}
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for s in subs:
        upcoming = next_send(zone(s.timezone), s.send_hour, now, last.get(s.id)) if s.state == "active" else None
        rows.append({"id": s.id, "email": s.email, "filter": s.filter, "label": filter_label(s.filter, ctx.labels),
                     "timezone": s.timezone, "send_hour": s.send_hour, "format": s.format, "state": s.state,
                     "next_send": upcoming.isoformat() if upcoming else None,
                     "covered_until": s.watermark.isoformat() if s.watermark else None, "last_error": s.last_error})
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    for r in rows:
        print(f"{r['id']:>6}  {r['state']:<12} {printable(r['email'])}  [{printable(r['label'])}]  "
              f"{r['send_hour']:02d}:00 {printable(r['timezone'])}  {r['format']}  next: {r['next_send'] or '-'}"
              + (f"  error: {printable(r['last_error'])}" if r["last_error"] else ""))
    print(f"{len(rows)} subscription(s)")
    return 0


def cmd_subscriptions_remove(args: argparse.Namespace, settings: Settings) -> int:
    db, ctx = _open(settings)
    with db:
        if args.target.isdigit():
            ids = [int(args.target)]
        else:
            with db.connection() as conn:
                ids = [s.id for s in subs_db.list_all(conn, email=normalize_email(args.target))]
        removed = [i for i in ids if unsubscribe(ctx, i) is not None]
    if not removed:
        raise NotFoundError("subscription", args.target)
    print(f"unsubscribed {len(removed)} subscription(s): {', '.join(map(str, removed))}")
    return 0


def cmd_digest_preview(args: argparse.Namespace, settings: Settings) -> int:
    db, ctx = _open(settings)
    with db:
        with db.connection() as conn:
            sub = subs_db.get(conn, args.subscription)
        if sub is None:
            raise NotFoundError("subscription", args.subscription)
        digest, message = preview(ctx, sub)
    part = message.part("plain" if args.text or sub.format == "text" else "html") or ""
    data = message.as_bytes(b"\n") if args.eml else part.encode()
    if args.output and args.output != "-":
        Path(args.output).write_bytes(data)
        print(f"{digest.subject}: {digest.shown} item(s) written to {args.output}")
    else:
        sys.stdout.buffer.write(data)
    return 0


def cmd_digest_send_due(args: argparse.Namespace, settings: Settings) -> int:
    db, ctx = _open(settings)
    with db:
        report = send_due(ctx, force=args.now)
    print(report.describe())
    for error in report.errors[:20]:
        print(f"    {error}")
    for note in report.notes[:20]:  # why the others got nothing
        print(f"    {printable(note)}")
    if len(report.notes) > 20:
        print(f"    … and {len(report.notes) - 20} more subscription(s) with nothing sent")
    return 0


def add_cli(sub: Any) -> None:
    """Register `subscriptions …` and `digest …` on aggregator.cli's subparsers."""
    subs = sub.add_parser("subscriptions", help="Manage digest email subscriptions.",
                          description="Manage digest email subscriptions.")
    ssub = subs.add_subparsers(dest="subscriptions_command", required=True, metavar="ACTION")
    p = ssub.add_parser("add", help="Subscribe an address (a confirmation email is sent unless --confirmed).")
    p.set_defaults(func=cmd_subscriptions_add)
    p.add_argument("email")
    p.add_argument("--country", action="append", metavar="CC", help="Country code (repeatable).")
    p.add_argument("--region", action="append", metavar="CODE", help="Region code (repeatable).")
    p.add_argument("--topic", action="append", metavar="CODE", help="Topic code (repeatable).")
    p.add_argument("--q", metavar="WORDS", help="Words, web-search syntax.")
    p.add_argument("--timezone", default="UTC", help="IANA time zone of the send hour (default UTC).")
    p.add_argument("--send-hour", type=int, default=8, help="Local hour to send at, 0-23 (default 8).")
    p.add_argument("--format", choices=("html", "text"), default="html", help="Email format (default html).")
    p.add_argument("--confirmed", action="store_true", help="Activate now, without the confirmation email "
                   "(only with the owner's consent).")
    p = ssub.add_parser("list", help="List subscriptions with their next send time.")
    p.set_defaults(func=cmd_subscriptions_list)
    p.add_argument("--all", action="store_true", help="Include unsubscribed ones.")
    p.add_argument("--json", action="store_true", help="Print JSON.")
    p = ssub.add_parser("remove", help="Unsubscribe by id, or every subscription of an address.")
    p.set_defaults(func=cmd_subscriptions_remove)
    p.add_argument("target", metavar="ID|EMAIL")

    digest = sub.add_parser("digest", help="Digest emails: preview, send what is due.",
                            description="Digest emails: preview, send what is due.")
    dsub = digest.add_subparsers(dest="digest_command", required=True, metavar="ACTION")
    p = dsub.add_parser("preview", help="Render a subscription's next digest without sending it.")
    p.set_defaults(func=cmd_digest_preview)
    p.add_argument("--subscription", type=int, required=True, metavar="ID")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--text", action="store_true", help="The plain-text part.")
    form.add_argument("--html", action="store_true", help="The HTML part (default for html subscriptions).")
    form.add_argument("--eml", action="store_true", help="The whole message, as sent.")
    p.add_argument("-o", "--output", help="File to write (default: standard output).")
    p = dsub.add_parser("send-due", help="Send every digest whose time has come.")
    p.set_defaults(func=cmd_digest_send_due)
    p.add_argument("--now", action="store_true", help="Every active subscription is due now (still once a day).")
