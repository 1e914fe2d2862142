"""send_due: confirmation emails, then every digest whose time has come, each exactly once.

    recover   digests left 'sending' by a process that died: back to pending, same Message-ID
    claim     one digest row per (subscription, local date) whose send hour has passed; the unique
              key makes concurrent schedulers harmless (the loser inserts nothing). The window ends
              with the claim's snapshot: it carries every post committed before it, and no post
              an earlier digest carried (aggregator.db.digests). A period whose digest found
              nothing stays open: it is claimed again EMPTY_RECHECK later, or at once when forced
    take      lease a batch (SKIP LOCKED); the attempt is counted before sending
    build     the posts of each distinct (filter, window) read once, rendered once per zone/format
    send      one SMTP connection per batch; each outcome recorded as it happens

`now` is a parameter all the way down, so tests can replay a DST day or a 36-hour outage.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

from aggregator.db import digests as digests_db
from aggregator.db import subscriptions as subs_db
from aggregator.db.digests import DigestRow, Window
from aggregator.db.subscriptions import Subscription
from aggregator.digest import render
from aggregator.digest.build import Digest, build_digest, filter_label
from aggregator.digest.context import DigestContext
from aggregator.digest.prepare import Prepared, Shared, prepare
from aggregator.digest.schedule import due_period, next_send, retry_delay, zone
from aggregator.digest.send import Outcome, Sender, open_sender
from aggregator.errors import AggregatorError, DeliveryError
from aggregator.logs import failures_logged

log = logging.getLogger(__name__)

BATCH = 100
THREADS = 2
LEASE = timedelta(minutes=30)
EMPTY_RECHECK = timedelta(hours=1)  # a day's digest that found nothing looks again this much later


@dataclass
class RunReport:
    confirmations: int = 0
    recovered: int = 0
    claimed: int = 0
    sent: int = 0
    empty: int = 0
    retried: int = 0
    failed: int = 0
    bounced: int = 0
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # why a subscription got nothing in this run
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, name: str, error: str | None = None) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + 1)
            if error:
                self.errors.append(error)

    def note(self, text: str) -> None:
        with self.lock:
            self.notes.append(text)

    def describe(self) -> str:
        return (f"claimed {self.claimed}, sent {self.sent}, empty {self.empty}, retry later {self.retried}, "
                f"failed {self.failed} (bounced {self.bounced}), recovered {self.recovered}, "
                f"confirmations {self.confirmations}")


def owner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def send_due(ctx: DigestContext, *, now: datetime | None = None, force: bool = False,
             sender: Sender | None = None, batch: int = BATCH, threads: int = THREADS) -> RunReport:
    """Send what is due at `now`; `force`: every active subscription is due (once per local date).
    With no `sender` given, `threads` senders work at once, each on its own SMTP connection: one
    builds messages while another waits for the mail server or the database."""
    now = now or datetime.now(UTC)
    report = RunReport()
    with (open_sender(ctx.settings) if sender is None else nullcontext(sender)) as first:
        report.confirmations = send_confirmations(ctx, first, now)
        report.recovered = recover(ctx, now)
        report.claimed = claim_due(ctx, now, force=force, report=report)
        shared = Shared()
        if sender is not None or threads <= 1:
            _send_batches(ctx, first, now, batch, report, shared)
        else:
            helpers = [threading.Thread(target=_helper, args=(ctx, now, batch, report, shared), daemon=True)
                       for _ in range(threads - 1)]
            for helper in helpers:
                helper.start()
            _send_batches(ctx, first, now, batch, report, shared)
            for helper in helpers:
                helper.join()
    log.info("digest.run %s", report.describe().replace(", ", " ").replace(" (", " ").replace(")", ""))
    return report


def _helper(ctx: DigestContext, now: datetime, batch: int, report: RunReport, shared: Shared) -> None:
    with failures_logged(log, "digest.sender_failed"), open_sender(ctx.settings) as sender:  # a later run
        _send_batches(ctx, sender, now, batch, report, shared)  # recovers the digests it had leased


def _send_batches(ctx: DigestContext, sender: Sender, now: datetime, batch: int, report: RunReport,
                  shared: Shared) -> None:
    owner = f"{owner_name()}:{threading.get_ident()}"
    while True:
        with ctx.db.connection() as conn:
            rows = digests_db.take_ready(conn, owner=owner, now=now, lease_until=now + LEASE, limit=batch)
        if not rows:
            return
        if not deliver(ctx, rows, sender, now, owner, report, shared):
            return  # the mail server is unreachable: the rest waits for the next run


def recover(ctx: DigestContext, now: datetime) -> int:
    with ctx.db.connection() as conn:
        stale = digests_db.recover_stale(conn, now)
    for row in stale:
        log.warning("digest.interrupted id=%d subscription=%d message_id=%s attempts=%d: resending with the "
                    "same Message-ID (it may have been delivered)", row.id, row.subscription_id, row.message_id,
                    row.attempts)
    return len(stale)


def claim_due(ctx: DigestContext, now: datetime, *, force: bool = False, report: RunReport | None = None) -> int:
    """Claim the digests due at `now`; `report` is told why each other subscription gets none."""
    note = report.note if report is not None else (lambda text: None)
    with ctx.db.connection() as conn:
        candidates = subs_db.due_candidates(conn)
    if not candidates:
        note("no active subscription: a subscription becomes active when its address confirms it")
    periods = {}
    for c in candidates:
        if c.unfinished:
            note(f"subscription {c.id}: its last digest is still waiting to be sent (see its retry time)")
            continue
        try:
            tz = zone(c.timezone)
            period = due_period(tz, c.send_hour, now, c.last_period, force=force)
        except AggregatorError:
            log.warning("digest.bad_timezone subscription=%d timezone=%s", c.id, c.timezone)
            note(f"subscription {c.id}: unknown time zone {c.timezone!r}")
            continue
        if period is not None:
            periods[c.id] = period
        elif c.last_period is not None and c.last_period >= now.astimezone(tz).date():
            note(f"subscription {c.id}: today's digest ({c.last_period}) was already sent; one digest a day")
        else:
            note(f"subscription {c.id}: not due before {next_send(tz, c.send_hour, now, c.last_period):%Y-%m-%d %H:%M} "
                 "UTC (--now sends it at once)")
    with ctx.db.connection() as conn:
        claimed = digests_db.claim(conn, periods, now=now, domain=ctx.domain, force=force)
    for sub_id in sorted(set(periods) - {s for _, s in claimed}):
        note(f"subscription {sub_id}: nothing new matched at its last check today; it is checked again "
             f"hourly (--now checks at once)" if not force else
             f"subscription {sub_id}: claimed by another process at the same moment")
    return len(claimed)


def deliver(ctx: DigestContext, rows: list[DigestRow], sender: Sender, now: datetime, owner: str,
            report: RunReport, shared: Shared | None = None) -> bool:
    """Build, send and record one leased batch; False when the mail server could not be reached."""
    prepared = prepare(ctx, rows, now, shared)
    for i, row in enumerate(rows):
        item = prepared[row.id]
        if item.error:
            _finish(ctx, row, owner, "failed", now, report, error=item.error)
            continue
        if item.message is None:
            _finish(ctx, row, owner, "empty", now, report, items=0)
            report.note(f"subscription {row.subscription_id}: nothing new matched its filter since "
                        f"{row.window_start:%Y-%m-%d %H:%M} UTC; today's digest is still to come, checked "
                        f"again from {now + EMPTY_RECHECK:%H:%M} UTC")
            continue
        try:
            outcome = sender.send(item.message, item.recipient)
        except DeliveryError as exc:
            log.warning("digest.smtp_unavailable error=%s", exc)
            for rest in rows[i:]:
                _retry(ctx, rest, owner, now, report, Outcome("retry", str(exc)))
            return False
        _record(ctx, row, owner, now, report, outcome, item)
    return True


def _record(ctx: DigestContext, row: DigestRow, owner: str, now: datetime, report: RunReport, outcome: Outcome,
            item: Prepared) -> None:
    if outcome.sent:
        _finish(ctx, row, owner, "sent", now, report, items=item.items)
    elif outcome.status == "retry":
        _retry(ctx, row, owner, now, report, outcome)
    else:
        _finish(ctx, row, owner, "failed", now, report, error=f"{outcome.status}: {outcome.detail}")
        if outcome.status == "bounced":
            report.count("bounced")
            with ctx.db.connection() as conn:
                subs_db.mark_bouncing(conn, row.subscription_id, outcome.detail)
            log.warning("digest.bounced subscription=%d reply=%s", row.subscription_id, outcome.detail)


def _finish(ctx: DigestContext, row: DigestRow, owner: str, state: str, now: datetime, report: RunReport, *,
            items: int | None = None, error: str | None = None) -> None:
    with ctx.db.connection() as conn:
        digests_db.finish(conn, row.id, owner=owner, state=state, now=now, items=items, error=error,
                          recheck_at=now + EMPTY_RECHECK)
    report.count(state, f"digest {row.id}: {error}" if error else None)


def _retry(ctx: DigestContext, row: DigestRow, owner: str, now: datetime, report: RunReport,
           outcome: Outcome) -> None:
    if row.attempts >= ctx.settings.digest_max_attempts:
        _finish(ctx, row, owner, "failed", now, report, error=f"gave up after {row.attempts} attempts: "
                f"{outcome.detail}")
        return
    at = now + retry_delay(row.attempts, ctx.settings.digest_retry_seconds)
    with ctx.db.connection() as conn:
        digests_db.retry_later(conn, row.id, owner=owner, at=at, error=outcome.detail)
    report.count("retried")
    log.info("digest.retry id=%d attempt=%d at=%s error=%s", row.id, row.attempts, at.isoformat(), outcome.detail)


def send_confirmations(ctx: DigestContext, sender: Sender, now: datetime) -> int:
    """Confirmation emails still to send; a failure leaves them queued for the next run.

    An address that got SUBSCRIBE_ADDRESS_LIMIT of them within the window gets no more: the
    request is dropped, not deferred (a flood held back is still a flood, only later); a request
    made once the window has room sends again. The count is in the database, shared by every
    process that sends."""
    window = timedelta(hours=ctx.settings.subscribe_address_window_hours)
    with ctx.db.connection() as conn:
        subs_db.forget_confirmations(conn, now - window)
    sent = 0
    while True:
        with ctx.db.connection() as conn:
            pending = subs_db.unconfirmed(conn, limit=100)
            for sub in pending:
                if _address_limit_reached(ctx, conn, sub, now - window):
                    subs_db.mark_confirmation_sent(conn, sub.id, now)
                    continue
                try:
                    outcome = sender.send(confirmation_message(ctx, sub, now), sub.email)
                except DeliveryError as exc:
                    log.warning("subscription.confirmation_unsent id=%d error=%s", sub.id, exc)
                    return sent
                if outcome.status == "retry":
                    log.warning("subscription.confirmation_unsent id=%d reply=%s", sub.id, outcome.detail)
                    return sent
                if outcome.status == "rejected":  # this message can never go out as it is: say why, once
                    log.warning("subscription.confirmation_rejected id=%d reply=%s", sub.id, outcome.detail)
                    subs_db.mark_confirmation_sent(conn, sub.id, now)
                    subs_db.record_error(conn, sub.id, f"confirmation not sent: {outcome.detail}")
                    continue
                subs_db.mark_confirmation_sent(conn, sub.id, now)
                subs_db.record_confirmation(conn, sub.email, now)  # a bounce reached the address's server too
                if outcome.status == "bounced":
                    subs_db.unsubscribe(conn, sub.id, now)
                    log.warning("subscription.confirmation_bounced id=%d reply=%s", sub.id, outcome.detail)
                else:
                    sent += 1
        if len(pending) < 100:
            return sent


def _address_limit_reached(ctx: DigestContext, conn: psycopg.Connection, sub: Subscription,
                           since: datetime) -> bool:
    """Counting locks the address until `conn` commits, after the send is recorded: two processes
    cannot both take the last place. Logged by subscription id: the address is personal data."""
    limit = ctx.settings.subscribe_address_limit
    if not limit:
        return False
    count = subs_db.confirmations_sent_to(conn, sub.email, since)
    if count < limit:
        return False
    log.warning("subscription.confirmation_limited id=%d sent=%d limit=%d window_hours=%g: not sent",
                sub.id, count, limit, ctx.settings.subscribe_address_window_hours)
    return True


def confirmation_message(ctx: DigestContext, sub: Subscription, now: datetime) -> render.Outgoing:
    context = {"label": filter_label(sub.filter, ctx.labels), "email": sub.email, "send_hour": sub.send_hour,
               "timezone": sub.timezone, "hours": ctx.settings.digest_confirm_hours,
               "confirm_url": ctx.links.confirm(sub.id, now)}
    return render.compose(
        sender=ctx.settings.mail_from, to=sub.email,
        subject=f"Confirm your daily digest: {context['label']}",
        text=render.render("confirm.txt", **context),
        html_body=render.render("confirm.html", **context) if sub.format == "html" else None,
        message_id=f"<confirm.{sub.id}.{int(now.timestamp())}@{ctx.domain}>", date=now,
        headers={"Auto-Submitted": "auto-generated"},
    )


def preview(ctx: DigestContext, sub: Subscription, now: datetime | None = None) -> tuple[Digest, render.Outgoing]:
    """The digest the subscription would get now (from its watermark), without sending or recording."""
    from aggregator.digest.prepare import digest_for, message_for

    now = now or datetime.now(UTC)
    start = sub.watermark or now - timedelta(days=1)
    digest = digest_for(ctx, sub, Window(start, sub.watermark_snapshot))
    rendered = render.render_digest(digest, period_start=start, now=now,
                                    more_url=ctx.links.posts(sub.filter, start), feed_url=ctx.links.feed(sub.filter),
                                    with_html=sub.format == "html")
    return digest, message_for(ctx, sub, rendered, f"<preview.{sub.id}@{ctx.domain}>", now)


__all__ = ["RunReport", "build_digest", "preview", "send_confirmations", "send_due"]
