"""SQL for email subscriptions: create, confirm, change, unsubscribe, bounce; due candidates;
the count of confirmation emails per address.

One live subscription per (email, filter) and one pending subscription per email are the
database's job (partial unique indexes); the functions here keep to the state machine
pending -> active -> unsubscribed | bouncing, each UPDATE naming the state it expects, so a stale
click or a second process changes nothing.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from aggregator.errors import InvalidQueryError, StorageError

_COLUMNS = sql.SQL("""id, email, filter, filter_key, timezone, send_hour, format, state, origin, watermark,
              confirm_sent_at, confirmed_at, unsubscribed_at, last_error, created_at, updated_at,
              watermark_snapshot::text""")
CONFIRMATION_LOCK = 72_420  # advisory lock class (two-key form): "confirmation emails to one address"


@dataclass(slots=True)
class Subscription:
    id: int
    email: str
    filter: dict[str, Any]
    filter_key: str
    timezone: str
    send_hour: int
    format: str
    state: str
    origin: str
    watermark: datetime | None
    confirm_sent_at: datetime | None
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    watermark_snapshot: str | None = None  # pg_snapshot (text) the last delivered digest ended with


@dataclass(frozen=True, slots=True)
class NewSubscription:
    email: str
    filter: dict[str, Any]
    filter_key: str
    timezone: str
    send_hour: int
    format: str
    origin: str


@dataclass(slots=True)
class DueCandidate:
    id: int
    timezone: str
    send_hour: int
    last_period: date | None  # the last period with a digest that was not empty
    unfinished: bool  # a digest of it is still pending or being sent


def _one(conn: psycopg.Connection, query: sql.Composable, params: dict[str, Any]) -> Subscription | None:
    return conn.cursor(row_factory=class_row(Subscription)).execute(query, params).fetchone()


def create(conn: psycopg.Connection, new: NewSubscription) -> tuple[Subscription, bool]:
    """Insert a pending subscription, or return the one this request is about (False):
    - the live one with this email and filter (a pending one takes the new time and format:
      nobody has confirmed the old ones);
    - else the address's pending one, which becomes this request (filter, time, format, spelling
      of the address): one pending subscription per address, so varying the filter cannot
      multiply confirmation emails, and the link confirms what was asked last."""
    params = {"email": new.email, "filter": Jsonb(new.filter), "filter_key": new.filter_key,
              "timezone": new.timezone, "send_hour": new.send_hour, "format": new.format, "origin": new.origin}
    for _ in range(3):  # a conflicting row that changes state between the statements: look again
        created = _one(conn, sql.SQL("""
            INSERT INTO subscriptions (email, filter, filter_key, timezone, send_hour, format, origin)
            VALUES (%(email)s, %(filter)s, %(filter_key)s, %(timezone)s, %(send_hour)s, %(format)s, %(origin)s)
            ON CONFLICT DO NOTHING
            RETURNING {columns}
        """).format(columns=_COLUMNS), params)
        if created is not None:
            return created, True
        found = _one(conn, sql.SQL("""
            UPDATE subscriptions
            SET timezone = CASE WHEN state = 'pending' THEN %(timezone)s ELSE timezone END,
                send_hour = CASE WHEN state = 'pending' THEN %(send_hour)s ELSE send_hour END,
                format = CASE WHEN state = 'pending' THEN %(format)s ELSE format END,
                updated_at = now()
            WHERE lower(email) = lower(%(email)s) AND filter_key = %(filter_key)s AND state <> 'unsubscribed'
            RETURNING {columns}
        """).format(columns=_COLUMNS), params)
        if found is not None:
            return found, False
        taken = _one(conn, sql.SQL("""
            UPDATE subscriptions
            SET email = %(email)s, filter = %(filter)s, filter_key = %(filter_key)s, timezone = %(timezone)s,
                send_hour = %(send_hour)s, format = %(format)s, origin = %(origin)s, updated_at = now()
            WHERE lower(email) = lower(%(email)s) AND state = 'pending'
            RETURNING {columns}
        """).format(columns=_COLUMNS), params)
        if taken is not None:
            return taken, False
    raise StorageError("subscriptions: the address's subscriptions kept changing while subscribing")


def get(conn: psycopg.Connection, sub_id: int) -> Subscription | None:
    return _one(conn, sql.SQL("SELECT {columns} FROM subscriptions WHERE id = %(id)s").format(columns=_COLUMNS),
                {"id": sub_id})


def list_all(conn: psycopg.Connection, *, include_ended: bool = False, email: str | None = None) -> list[Subscription]:
    cur = conn.cursor(row_factory=class_row(Subscription))
    return cur.execute(sql.SQL("""
        SELECT {columns} FROM subscriptions
        WHERE (%(all)s OR state <> 'unsubscribed') AND (%(email)s::text IS NULL OR lower(email) = lower(%(email)s))
        ORDER BY id
    """).format(columns=_COLUMNS), {"all": include_ended, "email": email}).fetchall()


def confirm(conn: psycopg.Connection, sub_id: int, now: datetime, first_window_start: datetime) -> bool:
    """pending -> active; the first digest covers arrivals from `first_window_start` on."""
    return conn.execute("""
        UPDATE subscriptions
        SET state = 'active', confirmed_at = %(now)s, watermark = coalesce(watermark, %(start)s), updated_at = now()
        WHERE id = %(id)s AND state = 'pending'
    """, {"id": sub_id, "now": now, "start": first_window_start}).rowcount == 1


def unsubscribe(conn: psycopg.Connection, sub_id: int, now: datetime) -> bool:
    """Any live state -> unsubscribed; False when it already was."""
    return conn.execute("""
        UPDATE subscriptions SET state = 'unsubscribed', unsubscribed_at = %(now)s, updated_at = now()
        WHERE id = %(id)s AND state <> 'unsubscribed'
    """, {"id": sub_id, "now": now}).rowcount == 1


def update_preferences(conn: psycopg.Connection, sub_id: int, *, timezone: str, send_hour: int, format: str,
                       filter: dict[str, Any] | None = None, filter_key: str | None = None) -> bool:
    """Change time and format, and the filter when one is given. InvalidQueryError when the address
    already gets that filter in another subscription (the unique index says so, race-free)."""
    try:
        with conn.transaction():
            return conn.execute("""
                UPDATE subscriptions SET timezone = %(timezone)s, send_hour = %(send_hour)s, format = %(format)s,
                       filter = coalesce(%(filter)s, filter), filter_key = coalesce(%(filter_key)s, filter_key),
                       updated_at = now()
                WHERE id = %(id)s AND state IN ('pending', 'active')
            """, {"id": sub_id, "timezone": timezone, "send_hour": send_hour, "format": format,
                  "filter": Jsonb(filter) if filter is not None else None, "filter_key": filter_key}).rowcount == 1
    except psycopg.errors.UniqueViolation as exc:
        raise InvalidQueryError("filter", "this address already gets a digest of that filter") from exc


def record_error(conn: psycopg.Connection, sub_id: int, error: str) -> None:
    """Why the last message to this subscription could not go out (shown by `subscriptions list`)."""
    conn.execute("UPDATE subscriptions SET last_error = %(error)s, updated_at = now() WHERE id = %(id)s",
                 {"id": sub_id, "error": error[:1000]})


def mark_bouncing(conn: psycopg.Connection, sub_id: int, error: str) -> None:
    """A hard bounce: stop sending until the address is subscribed again."""
    conn.execute("""
        UPDATE subscriptions SET state = 'bouncing', last_error = %(error)s, updated_at = now()
        WHERE id = %(id)s AND state = 'active'
    """, {"id": sub_id, "error": error[:1000]})


def unconfirmed(conn: psycopg.Connection, *, limit: int = 200) -> list[Subscription]:
    """Pending subscriptions whose confirmation email has not gone out yet."""
    cur = conn.cursor(row_factory=class_row(Subscription))
    return cur.execute(sql.SQL("""
        SELECT {columns} FROM subscriptions WHERE state = 'pending' AND confirm_sent_at IS NULL
        ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
    """).format(columns=_COLUMNS), {"limit": limit}).fetchall()


def mark_confirmation_sent(conn: psycopg.Connection, sub_id: int, now: datetime) -> None:
    """Out of the queue: sent, bounced, or dropped by the per-address limit (which then, like a
    real send, starts the wait before a repeated request may queue it again)."""
    conn.execute("UPDATE subscriptions SET confirm_sent_at = %(now)s WHERE id = %(id)s", {"id": sub_id, "now": now})


def request_confirmation_again(conn: psycopg.Connection, sub_id: int, not_after: datetime) -> bool:
    """Queue the confirmation email once more, unless one went out after `not_after` (so that
    repeating a form cannot flood someone's mailbox)."""
    return conn.execute("""
        UPDATE subscriptions SET confirm_sent_at = NULL
        WHERE id = %(id)s AND state = 'pending' AND confirm_sent_at < %(not_after)s
    """, {"id": sub_id, "not_after": not_after}).rowcount == 1


def confirmations_sent_to(conn: psycopg.Connection, email: str, since: datetime) -> int:
    """Confirmation emails this address got since `since`. It also locks the address until the
    transaction ends, so that two processes cannot both see room for one more: count, send and
    `record_confirmation` belong in one transaction."""
    conn.execute("SELECT pg_advisory_xact_lock(%(lock)s, hashtext(lower(%(email)s)))",
                 {"lock": CONFIRMATION_LOCK, "email": email})
    row = conn.execute("""
        SELECT count(*) FROM confirmation_sends
        WHERE address_hash = sha256(convert_to(lower(%(email)s), 'UTF8')) AND sent_at > %(since)s
    """, {"email": email, "since": since}).fetchone()
    assert row is not None
    return int(row[0])


def record_confirmation(conn: psycopg.Connection, email: str, now: datetime) -> None:
    conn.execute("""
        INSERT INTO confirmation_sends (address_hash, sent_at)
        VALUES (sha256(convert_to(lower(%(email)s), 'UTF8')), %(now)s)
    """, {"email": email, "now": now})


def forget_confirmations(conn: psycopg.Connection, before: datetime) -> int:
    """Counts older than the limit's window matter no more (and hold hashes of addresses)."""
    return conn.execute("DELETE FROM confirmation_sends WHERE sent_at < %(before)s", {"before": before}).rowcount


def due_candidates(conn: psycopg.Connection) -> list[DueCandidate]:
    """Every active subscription with the last period it has a digest for; an empty digest does
    not count (the period stays open for the posts that arrive later that day)."""
    cur = conn.cursor(row_factory=class_row(DueCandidate))
    return cur.execute("""
        SELECT s.id, s.timezone, s.send_hour,
               (SELECT max(d.period) FROM digests d WHERE d.subscription_id = s.id AND d.state <> 'empty')
                   AS last_period,
               EXISTS (SELECT 1 FROM digests d WHERE d.subscription_id = s.id
                       AND d.state IN ('pending', 'sending')) AS unfinished
        FROM subscriptions s WHERE s.state = 'active'
    """).fetchall()


def app_secret(conn: psycopg.Connection, name: str) -> bytes:
    """A random key made by the first process that asks, then shared by all of them."""
    conn.execute("INSERT INTO app_secrets (name, value) VALUES (%(name)s, %(value)s) ON CONFLICT (name) DO NOTHING",
                 {"name": name, "value": secrets.token_bytes(32)})
    row = conn.execute("SELECT value FROM app_secrets WHERE name = %(name)s", {"name": name}).fetchone()
    assert row is not None
    return bytes(row[0])


def list_by_ids(conn: psycopg.Connection, ids: list[int]) -> list[Subscription]:
    cur = conn.cursor(row_factory=class_row(Subscription))
    return cur.execute(sql.SQL("SELECT {columns} FROM subscriptions WHERE id = ANY(%(ids)s)").format(columns=_COLUMNS),
                       {"ids": ids}).fetchall()
