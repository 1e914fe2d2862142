"""Internationalized addresses go out with SMTPUTF8 where the server offers it, fail with a recorded
reason where it does not (never as an invalid RFC 2047 address), and an internationalized domain
alone needs nothing; `subscriptions list` never prints a stored control character raw."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from aggregator.config import Settings
from aggregator.db import Database
from aggregator.db import subscriptions as subs_db
from aggregator.digest.commands import add_cli
from aggregator.digest.context import DigestContext
from aggregator.digest.delivery import send_due
from aggregator.digest.subscribe import SubscriptionRequest, subscribe
from tests.digest.conftest import active, digest_settings, ingest, story_feeds
from tests.digest.test_exactly_once import digests
from tests.support.feedserver import FeedServer
from tests.support.smtp import SmtpSink

UNICODE = "用户@例子.广告"
IDN_ONLY = "desk@bücher.example"


@pytest.fixture
def plain_smtp() -> Iterator[SmtpSink]:
    """A server that does not offer SMTPUTF8."""
    sink = SmtpSink(smtputf8=False)
    sink.start()
    yield sink
    sink.stop()


def to_line(data: bytes) -> bytes:
    [line] = [line for line in data.split(b"\r\n") if line.startswith(b"To: ")]
    return line


def test_a_unicode_address_goes_out_with_smtputf8(dctx: DigestContext, dsettings: Settings, db: Database,
                                                   feed_server: FeedServer, smtp: SmtpSink) -> None:
    ingest(db, dsettings, feed_server, story_feeds())
    sub = active(dctx, UNICODE, watermark=datetime.now(UTC) - timedelta(days=1))
    assert send_due(dctx, force=True).sent == 1
    [received] = smtp.received
    assert received.rcpt_tos == [UNICODE]
    assert to_line(received.data) == f"To: {UNICODE}".encode(), "UTF-8 as it is, not an encoded word"
    assert digests(db, sub)[0].state == "sent"


def test_without_smtputf8_the_delivery_fails_with_its_reason(settings: Settings, db: Database, dctx: DigestContext,
                                                              feed_server: FeedServer, plain_smtp: SmtpSink) -> None:
    ctx = DigestContext.create(digest_settings(settings, plain_smtp), db)
    ingest(db, ctx.settings, feed_server, story_feeds())
    sub = active(ctx, UNICODE, watermark=datetime.now(UTC) - timedelta(days=1))
    report = send_due(ctx, force=True)
    assert (report.sent, report.failed) == (0, 1)
    [row] = digests(db, sub)
    assert row.state == "failed" and "needs SMTPUTF8" in (row.last_error or ""), row.last_error
    assert plain_smtp.received == []

    pending, _ = subscribe(ctx, SubscriptionRequest(email="Jörg@example.org"))
    send_due(ctx)
    with db.connection() as conn:
        error = subs_db.get(conn, pending.id).last_error  # type: ignore[union-attr]
    assert error and error.startswith("confirmation not sent: ") and "SMTPUTF8" in error
    assert plain_smtp.received == []


def test_an_internationalized_domain_alone_travels_as_idna(settings: Settings, db: Database, dctx: DigestContext,
                                                           feed_server: FeedServer, plain_smtp: SmtpSink) -> None:
    ctx = DigestContext.create(digest_settings(settings, plain_smtp), db)
    ingest(db, ctx.settings, feed_server, story_feeds())
    active(ctx, IDN_ONLY, watermark=datetime.now(UTC) - timedelta(days=1))
    assert send_due(ctx, force=True).sent == 1
    [received] = plain_smtp.received
    assert received.rcpt_tos == ["desk@xn--bcher-kva.example"]
    assert to_line(received.data) == b"To: desk@xn--bcher-kva.example"


def test_subscriptions_list_escapes_control_characters(dsettings: Settings, db: Database, dctx: DigestContext,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    first = active(dctx, "a@example.org", q="border guards")
    active(dctx, "b@example.org", topics=["terrorism"])
    with db.connection() as conn:  # as stored before words were normalized, or written by hand
        conn.execute("""UPDATE subscriptions
                        SET filter = jsonb_set(filter, '{q}', to_jsonb(E'border\\r\\nFAKE\\x1b[2J'::text))
                        WHERE id = %(id)s""", {"id": first})
    parser = argparse.ArgumentParser(prog="aggregator")
    add_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["subscriptions", "list"])
    assert args.func(args, dsettings) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 3, out  # two subscriptions and the count
    assert "“border\\r\\nFAKE\\x1b[2J”" in lines[0]
    assert "\r" not in out and "\x1b" not in out
