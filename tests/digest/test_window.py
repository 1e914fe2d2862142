"""The digest window is exact: a digest carries every post committed before it was claimed, none
twice, and none held back by a settling delay; an empty digest does not use up the day, and
`digest send-due` says why nothing went out."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from aggregator.config import Settings
from aggregator.db import Database
from aggregator.digest.commands import add_cli
from aggregator.digest.context import DigestContext
from aggregator.digest.delivery import send_due
from aggregator.runtime import build_web_app
from tests.digest.conftest import TestClient, active, ingest, story_feeds
from tests.digest.test_exactly_once import digests
from tests.digest.test_subscribe_flow import only_link
from tests.support.feedserver import FeedServer
from tests.support.smtp import SmtpSink

READER = "reader@example.org"


def run(settings: Settings, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    parser = argparse.ArgumentParser(prog="aggregator")
    add_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    assert args.func(args, settings) == 0
    return capsys.readouterr().out


@pytest.fixture
def client(dsettings: Settings, db: Database, dctx: DigestContext) -> Iterator[TestClient]:
    with TestClient(build_web_app(dsettings, db)) as test_client:
        yield test_client


def stored_posts(db: Database) -> list[str]:
    with db.connection() as conn:
        return [r[0] for r in conn.execute("SELECT title FROM posts ORDER BY id")]


def digest_text(smtp: SmtpSink, address: str = READER) -> str:
    [*_, message] = smtp.to(address)
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def test_poll_subscribe_confirm_send_now_carries_the_posts_just_polled(
        dsettings: Settings, db: Database, dctx: DigestContext, smtp: SmtpSink, feed_server: FeedServer,
        client: TestClient, capsys: pytest.CaptureFixture[str]) -> None:
    ingest(db, dsettings, feed_server, story_feeds())
    titles = stored_posts(db)
    run(dsettings, capsys, "subscriptions", "add", READER)
    confirmed = client.post(only_link(smtp, READER, "/subscriptions/confirm/"))
    assert confirmed.status_code == 200 and "You are subscribed" in confirmed.text

    out = run(dsettings, capsys, "digest", "send-due", "--now")
    assert "sent 1" in out, out
    [_, digest] = smtp.wait_for(lambda got: len(got) == 2)
    assert digest.rcpt_tos == [READER]
    assert not str(digest.message["Subject"]).startswith("Nothing new")
    [row] = digests(db, 1)
    assert (row.state, row.items) == ("sent", len(titles)), "every post polled a moment ago"
    assert "Almaty region raid" in digest_text(smtp)


def test_an_empty_digest_leaves_the_day_open_and_says_why(
        dsettings: Settings, db: Database, dctx: DigestContext, smtp: SmtpSink, feed_server: FeedServer,
        capsys: pytest.CaptureFixture[str]) -> None:
    run(dsettings, capsys, "subscriptions", "add", READER, "--confirmed")
    out = run(dsettings, capsys, "digest", "send-due", "--now")
    assert "sent 0" in out and "subscription 1: nothing new matched its filter since" in out, out
    assert smtp.received == []

    ingest(db, dsettings, feed_server, story_feeds())
    out = run(dsettings, capsys, "digest", "send-due", "--now")
    assert "sent 1" in out, out
    assert "Almaty region raid" in digest_text(smtp)
    [row] = digests(db, 1)
    assert (row.state, row.items) == ("sent", len(stored_posts(db))), "one row for the day, reopened"

    out = run(dsettings, capsys, "digest", "send-due", "--now")
    assert "sent 0" in out and "subscription 1: today's digest" in out and "already sent" in out, out
    assert len(smtp.received) == 1


def test_the_scheduler_looks_again_later_the_same_day(dctx: DigestContext, dsettings: Settings, db: Database,
                                                      feed_server: FeedServer, smtp: SmtpSink) -> None:
    morning = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0)
    active(dctx, READER, watermark=morning - timedelta(days=1))
    assert send_due(dctx, now=morning).empty == 1
    ingest(db, dsettings, feed_server, story_feeds())
    assert send_due(dctx, now=morning + timedelta(minutes=30)).claimed == 0, "not at every tick"
    report = send_due(dctx, now=morning + timedelta(hours=1))
    assert (report.claimed, report.sent) == (1, 1)
    assert len(digests(db, 1)) == 1


def in_flight_post(conn: psycopg.Connection, stamped: datetime) -> None:
    """A post written by a poll that has not committed yet, stamped with its (earlier) start."""
    conn.execute("""
        INSERT INTO posts (dedup_key, url, title, published_at, html, text, summary, content_hash, first_seen_at)
        VALUES ('in-flight', 'https://late.example/1', 'Late commit: Tajik border guards seize heroin',
                %(t)s, '', 'Tajik border guards seized heroin.', '', 'x', %(t)s)
    """, {"t": stamped})


def test_a_post_committed_after_the_claim_goes_in_the_next_digest_once(
        dctx: DigestContext, dsettings: Settings, db: Database, feed_server: FeedServer, smtp: SmtpSink) -> None:
    now = datetime.now(UTC)
    active(dctx, READER, watermark=now - timedelta(days=1))
    ingest(db, dsettings, feed_server, story_feeds())
    committed = len(stored_posts(db))
    with psycopg.connect(dsettings.database_url or "") as writer:
        in_flight_post(writer, now - timedelta(minutes=5))  # its poll started before the digest
        report = send_due(dctx, now=now, force=True)
        writer.commit()
    assert report.sent == 1
    assert "Late commit" not in digest_text(smtp), "not committed when the digest was claimed"
    assert send_due(dctx, now=now + timedelta(days=1), force=True).sent == 1
    assert "Late commit" in digest_text(smtp), "so it goes in the next one"
    assert send_due(dctx, now=now + timedelta(days=2), force=True).empty == 1, "and in no other"
    assert [(d.state, d.items) for d in digests(db, 1)] == [("sent", committed), ("sent", 1), ("empty", 0)]
