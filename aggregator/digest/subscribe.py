"""Subscribing, confirming, changing and ending a subscription: one implementation behind the
REST API, the /subscribe page and the CLI.

A filter is stored in its canonical form (the query parameters of GET /api/v1/posts, codes
checked against the taxonomy, sorted, defaults left out) so that equal filters are equal keys:
that is what makes "one live subscription per (email, filter)" a unique index, and what lets the
digest job query the posts of each distinct filter once.

Nobody can be mail-bombed through the subscribe form: an address has at most one pending
(unconfirmed) subscription, whatever its filter. A request for another filter takes it over (the
newest request is what its link confirms: people refine a filter before confirming) and its
confirmation goes out again at most once per RESEND_AFTER. The sender also caps confirmation
emails per address (service.send_confirmations); the web routes cap requests per client.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from email_validator import EmailNotValidError, validate_email

from aggregator.db import subscriptions as subs_db
from aggregator.db.subscriptions import NewSubscription, Subscription
from aggregator.digest.context import DigestContext
from aggregator.digest.schedule import zone
from aggregator.errors import InvalidInputError, InvalidTokenError
from aggregator.query import PostFilter, Vocabulary, parse_filter

log = logging.getLogger(__name__)

FORMATS = ("html", "text")
RESEND_AFTER = timedelta(minutes=10)  # a repeated form re-sends the confirmation at most this often
FIRST_WINDOW = timedelta(days=1)  # the first digest covers the day before confirming


@dataclass(frozen=True)
class SubscriptionRequest:
    email: str
    countries: Sequence[str] = ()
    regions: Sequence[str] = ()
    topics: Sequence[str] = ()
    q: str | Sequence[str] | None = None
    role: str = "any"
    match: str = "any"
    timezone: str = "UTC"
    send_hour: int = 8
    format: str = "html"
    origin: str = "api"
    extra: dict[str, Any] = field(default_factory=dict)


def normalize_email(text: str) -> str:
    """Syntax checked and normalized (domain lower-cased and IDNA-checked, Unicode NFC); no DNS
    lookup: a typo'd domain shows up as a bounce of the confirmation, which sends nothing else."""
    try:
        return validate_email(text.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidInputError("email", str(exc)) from exc


def _words(q: str | Sequence[str] | None) -> str | None:
    """A list of searches matches posts matching any of them: joined with OR (web-search syntax).
    Runs of white space (a pasted line break, a tab) are one space, as they are to the search:
    equal searches make equal filters, and no stored filter carries a line break into a listing."""
    if q is None or isinstance(q, str):
        return " ".join(q.split()) or None if q else None
    parts = [" ".join(p.split()) for p in q if p and p.strip()]
    return " OR ".join(f'"{p}"' if " " in p and '"' not in p else p for p in parts) or None


def canonical_filter(req: SubscriptionRequest, vocabulary: Vocabulary) -> tuple[dict[str, Any], PostFilter]:
    """The filter as stored (canonical parameters) and as queried; InvalidInputError names the field."""
    params: dict[str, list[str]] = {"country": list(req.countries), "region": list(req.regions),
                                    "topic": list(req.topics), "role": [req.role], "match": [req.match]}
    q = _words(req.q)
    if q:
        params["q"] = [q]
    post_filter = parse_filter(params, vocabulary)
    canonical: dict[str, Any] = {
        "country": sorted(post_filter.countries), "region": sorted(post_filter.regions),
        "topic": sorted(post_filter.topics), "q": post_filter.q or "",
        "role": post_filter.role, "match": post_filter.match,
    }
    canonical = {k: v for k, v in canonical.items() if v and v != "any"}
    return canonical, post_filter


def filter_key(canonical: dict[str, Any]) -> str:
    return json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def stored_filter(params: dict[str, Any], vocabulary: Vocabulary) -> PostFilter:
    """A stored filter back as a PostFilter (InvalidQueryError if the taxonomy lost one of its codes)."""
    multi = {k: (list(v) if isinstance(v, list) else [str(v)]) for k, v in params.items()}
    return parse_filter(multi, vocabulary)


def check_preferences(timezone: str, send_hour: int, format: str) -> None:
    zone(timezone)
    if not 0 <= send_hour <= 23:
        raise InvalidInputError("send_hour", "must be an hour from 0 to 23")
    if format not in FORMATS:
        raise InvalidInputError("format", f"must be one of {', '.join(FORMATS)}")


def subscribe(ctx: DigestContext, req: SubscriptionRequest, *, now: datetime | None = None,
              confirmed: bool = False) -> tuple[Subscription, bool]:
    """Create (or find, or take over the address's pending one: see the module's docstring) the
    subscription; queue its confirmation email (or, `confirmed`, an operator's word, activate it at
    once). Returns it and whether it is new. What it returns must not reach an anonymous caller:
    it tells whether the address had subscriptions."""
    now = now or datetime.now(UTC)
    email = normalize_email(req.email)
    canonical, _ = canonical_filter(req, ctx.vocabulary)
    check_preferences(req.timezone, req.send_hour, req.format)
    new = NewSubscription(email, canonical, filter_key(canonical), req.timezone, req.send_hour, req.format,
                          req.origin)
    with ctx.db.connection() as conn:
        sub, created = subs_db.create(conn, new)
        if confirmed:
            subs_db.confirm(conn, sub.id, now, now - FIRST_WINDOW)
            subs_db.mark_confirmation_sent(conn, sub.id, now)
        elif not created and sub.state == "pending":
            subs_db.request_confirmation_again(conn, sub.id, now - RESEND_AFTER)
        sub = subs_db.get(conn, sub.id) or sub
    log.info("subscription.requested id=%d created=%s state=%s origin=%s", sub.id, created, sub.state, req.origin)
    return sub, created


def confirm(ctx: DigestContext, token: str, *, now: datetime | None = None) -> Subscription:
    now = now or datetime.now(UTC)
    sub_id = ctx.links.verify(token, "confirm", now)
    with ctx.db.connection() as conn:
        subs_db.confirm(conn, sub_id, now, now - FIRST_WINDOW)
        sub = subs_db.get(conn, sub_id)
    if sub is None:
        raise InvalidTokenError("this subscription no longer exists")
    log.info("subscription.confirmed id=%d state=%s", sub.id, sub.state)
    return sub


def unsubscribe(ctx: DigestContext, sub_id: int, *, now: datetime | None = None) -> Subscription | None:
    with ctx.db.connection() as conn:
        changed = subs_db.unsubscribe(conn, sub_id, now or datetime.now(UTC))
        sub = subs_db.get(conn, sub_id)
    if changed:
        log.info("subscription.unsubscribed id=%d", sub_id)
    return sub


def from_token(ctx: DigestContext, token: str, purpose: str, *, now: datetime | None = None) -> Subscription:
    sub_id = ctx.links.verify(token, purpose, now or datetime.now(UTC))
    with ctx.db.connection() as conn:
        sub = subs_db.get(conn, sub_id)
    if sub is None:
        raise InvalidTokenError("this subscription no longer exists")
    return sub


def change(ctx: DigestContext, sub_id: int, *, timezone: str, send_hour: int, format: str,
           filter_request: SubscriptionRequest | None = None) -> bool:
    """Change time and format, and the filter when `filter_request` is given (its countries,
    regions, topics, words, role and match; checked as when subscribing). The watermark stays: the
    next digest carries what arrived since the last one, through the new filter."""
    check_preferences(timezone, send_hour, format)
    canonical = key = None
    if filter_request is not None:
        canonical, _ = canonical_filter(filter_request, ctx.vocabulary)
        key = filter_key(canonical)
    with ctx.db.connection() as conn:
        changed = subs_db.update_preferences(conn, sub_id, timezone=timezone, send_hour=send_hour, format=format,
                                             filter=canonical, filter_key=key)
    log.info("subscription.changed id=%d filter_changed=%s", sub_id, canonical is not None)
    return changed
