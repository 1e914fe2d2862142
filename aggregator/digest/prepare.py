"""A leased batch of digests -> one ready message per digest, doing shared work once.

Subscribers are grouped by identical filter and window: the posts of a group are read with one
query and built into one Digest; that digest is rendered once per (zone, format) and copied per
recipient with their own address and signed links. With 10,000 subscribers over a few hundred
distinct filters, that is a few hundred queries and renders, not 10,000.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta

import psycopg

from aggregator.db import digests as digests_db
from aggregator.db import stories as stories_db
from aggregator.db import subscriptions as subs_db
from aggregator.db.digests import DigestRow, Window
from aggregator.db.subscriptions import Subscription
from aggregator.digest import render
from aggregator.digest.build import Digest, alert_line, build_digest
from aggregator.digest.context import DigestContext
from aggregator.digest.schedule import zone
from aggregator.digest.subscribe import stored_filter
from aggregator.errors import AggregatorError
from aggregator.query import PostFilter
from aggregator.stories.alerts import WINDOW, surge_alerts

log = logging.getLogger(__name__)

READ_FACTOR = 4  # posts read per item shown: room for collapsing duplicates


@dataclass(frozen=True, slots=True)
class Prepared:
    recipient: str = ""
    message: render.Outgoing | None = None  # None and no error: nothing matched, nothing to send
    items: int = 0
    error: str | None = None


def digest_for(ctx: DigestContext, sub: Subscription, window: Window) -> Digest:
    post_filter = stored_filter(sub.filter, ctx.vocabulary)
    limit = ctx.settings.digest_max_items * READ_FACTOR
    with ctx.db.connection() as conn:
        posts = digests_db.posts_in_window(conn, post_filter, window, limit=limit)
        alerts = alerts_for(ctx, conn, post_filter, window.end or datetime.now(UTC))
    total = posts[0].total if posts else 0
    digest = build_digest(posts, sub.filter, ctx.labels, total=total, max_items=ctx.settings.digest_max_items)
    return replace(digest, alerts=alerts)


def alerts_for(ctx: DigestContext, conn: psycopg.Connection, post_filter: PostFilter, now: datetime) -> tuple[str, ...]:
    """Surges of the digest's day on the countries, places and topics its filter names (none for a
    filter that names none: an alert on everything is noise in a digest)."""
    wanted = {("country", c) for c in post_filter.countries} | {("place", p) for p in post_filter.places}
    wanted |= {("topic", t) for t in post_filter.topics}
    wanted |= {("country", c) for members in post_filter.region_countries for c in members}
    if not wanted:
        return ()
    today = now.astimezone(UTC).date()
    start = datetime.combine(today - timedelta(days=WINDOW), time(), UTC)
    end = datetime.combine(today + timedelta(days=1), time(), UTC)
    rows = [(r.kind, r.code, r.day, r.stories) for r in stories_db.daily_story_counts(conn, start, end)
            if (r.kind, r.code) in wanted]
    names = {"country": ctx.labels.countries, "topic": ctx.labels.topics}
    return tuple(alert_line(names.get(a.kind, {}).get(a.code, a.code), a.count, a.baseline)
                 for a in surge_alerts(rows, today, threshold=ctx.settings.alert_threshold,
                                       min_excess=ctx.settings.alert_min_stories))


def message_for(ctx: DigestContext, sub: Subscription, rendered: render.Rendered, message_id: str,
                now: datetime) -> render.Outgoing:
    manage = ctx.links.manage(sub.id, now)
    unsubscribe = ctx.links.unsubscribe(sub.id, now)
    text, html = rendered.personal(zone(sub.timezone), sub.email, manage, unsubscribe)
    headers = render.list_headers(f"<digest.{ctx.domain}>", unsubscribe,
                                  ctx.links.unsubscribe_mailto(sub.id, now), manage)
    return render.compose(sender=ctx.settings.mail_from, to=sub.email, subject=rendered.subject, text=text,
                          html_body=html, message_id=message_id, date=now, headers=headers)


@dataclass
class Shared:
    """What one run has built so far, reused by its later batches."""

    digests: dict[tuple[str, Window], Digest | str] = field(default_factory=dict)
    renders: dict[tuple[str, Window, str], render.Rendered] = field(default_factory=dict)


def prepare(ctx: DigestContext, rows: list[DigestRow], now: datetime,
            shared: Shared | None = None) -> dict[int, Prepared]:
    with ctx.db.connection() as conn:
        subs = {s.id: s for s in subs_db.list_by_ids(conn, [r.subscription_id for r in rows])}
    shared = shared or Shared()
    digests, renders = shared.digests, shared.renders
    result: dict[int, Prepared] = {}
    for row in sorted(rows, key=lambda r: _order(subs.get(r.subscription_id))):  # zone by zone, filter by filter
        sub = subs.get(row.subscription_id)
        if sub is None or sub.state != "active":
            result[row.id] = Prepared(error=f"subscription is {sub.state if sub else 'gone'}")
            continue
        key = (sub.filter_key, row.window)
        if key not in digests:
            digests[key] = _digest_or_error(ctx, sub, row)
        digest = digests[key]
        if isinstance(digest, str):
            result[row.id] = Prepared(error=digest)
            continue
        if not digest.total and not ctx.settings.digest_send_empty:
            result[row.id] = Prepared(sub.email)
            continue
        rkey = (*key, sub.format)
        if rkey not in renders:
            renders[rkey] = render.render_digest(
                digest, period_start=row.window_start, now=now,
                more_url=ctx.links.posts(sub.filter, row.window_start), feed_url=ctx.links.feed(sub.filter),
                with_html=sub.format == "html")
        message = message_for(ctx, sub, renders[rkey], row.message_id, now)
        result[row.id] = Prepared(sub.email, message, digest.total)
    return result


def _order(sub: Subscription | None) -> tuple[str, str, str]:
    return (sub.filter_key, sub.format, sub.timezone) if sub else ("", "", "")


def _digest_or_error(ctx: DigestContext, sub: Subscription, row: DigestRow) -> Digest | str:
    try:
        return digest_for(ctx, sub, row.window)
    except AggregatorError as exc:  # the taxonomy lost a code of the filter, or the query failed
        log.warning("digest.build_failed subscription=%d error=%s", sub.id, exc)
        return str(exc)
