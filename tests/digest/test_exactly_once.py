"""Exactly once: concurrent schedulers, a mail server that is down, a service that was down, DST
days, a crash between the server's 250 and our record of it, hard bounces. Time is injected: every
run is given its `now`."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from aggregator.config import Settings
from aggregator.db import Database
from aggregator.db import digests as digests_db
from aggregator.db import subscriptions as subs_db
from aggregator.digest.context import DigestContext
from aggregator.digest.delivery import LEASE, RunReport, send_due
from aggregator.digest.send import MaildirSender, Outcome, Sender, SmtpSender
from tests.digest.conftest import active, digest_settings, ingest, later, story_feeds
from tests.support import queries
from tests.support.feedserver import FeedServer
from tests.support.smtp import SmtpSink

T0 = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)  # a Monday; 09:00 UTC is past an 08:00 UTC send hour


def digests(db: Database, sub_id: int) -> list[digests_db.DigestRow]:
    with db.connection() as conn:
        return queries.digests_of_subscription(conn, sub_id)


def with_posts(db: Database, settings: Settings, server: FeedServer, arrived: datetime) -> int:
    """The story feeds ingested, their posts stamped as arrived at `arrived`; how many posts."""
    ingest(db, settings, server, story_feeds())
    with db.connection() as conn:
        conn.execute("UPDATE posts SET first_seen_at = %(t)s", {"t": arrived})
        return int(conn.execute("SELECT count(*) FROM posts").fetchone()[0])  # type: ignore[index]


def test_two_schedulers_at_once_send_each_digest_once(dctx: DigestContext, dsettings: Settings, db: Database,
                                                      feed_server: FeedServer, smtp: SmtpSink) -> None:
    with_posts(db, dsettings, feed_server, T0 - timedelta(hours=3))
    subs = [active(dctx, f"reader{i}@example.org", watermark=T0 - timedelta(days=1)) for i in range(12)]
    other = Database(dsettings.database_url or "", max_size=4)
    contexts = [dctx, DigestContext.create(dsettings, other)]
    barrier = threading.Barrier(2)
    reports: list[RunReport] = []

    def run(ctx: DigestContext) -> None:
        barrier.wait()
        reports.append(send_due(ctx, now=T0, batch=3))

    try:
        threads = [threading.Thread(target=run, args=(c,)) for c in contexts]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        other.close()
    assert sum(r.sent for r in reports) == 12
    assert sorted(a for r in smtp.received for a in r.rcpt_tos) == sorted(f"reader{i}@example.org" for i in range(12))
    send_due(dctx, now=T0 + timedelta(hours=2))
    assert len(smtp.received) == 12, "a later run the same day sends nothing"
    assert all(len(digests(db, s)) == 1 for s in subs)


def test_mail_server_down_for_a_while_then_sent_once(dctx: DigestContext, dsettings: Settings, db: Database,
                                                     feed_server: FeedServer, smtp: SmtpSink) -> None:
    with_posts(db, dsettings, feed_server, T0 - timedelta(hours=3))
    sub = active(dctx, watermark=T0 - timedelta(days=1))
    smtp.stop()
    first = send_due(dctx, now=T0)
    assert (first.claimed, first.retried, first.sent) == (1, 1, 0)
    [row] = digests(db, sub)
    assert (row.state, row.attempts, row.next_attempt_at) == ("pending", 1, T0 + timedelta(seconds=60))
    assert send_due(dctx, now=T0 + timedelta(seconds=59)).retried == 0, "not before the backoff"
    assert send_due(dctx, now=T0 + timedelta(seconds=61)).retried == 1
    [row] = digests(db, sub)
    assert row.next_attempt_at == T0 + timedelta(seconds=61 + 120), "the wait doubles"
    smtp.busy = True  # back up, but answering 451
    smtp.start()
    assert send_due(dctx, now=T0 + timedelta(minutes=4)).retried == 1
    smtp.busy = False
    assert send_due(dctx, now=T0 + timedelta(hours=1)).sent == 1
    assert send_due(dctx, now=T0 + timedelta(hours=2)).sent == 0
    [message] = smtp.to("analyst@example.org")
    [row] = digests(db, sub)
    assert (row.state, row.attempts, row.message_id) == ("sent", 4, message["Message-ID"])
    assert "Almaty region raid" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_after_36_hours_down_the_next_digest_covers_the_gap(dctx: DigestContext, dsettings: Settings,
                                                            db: Database, feed_server: FeedServer,
                                                            smtp: SmtpSink) -> None:
    """Sent on day 1 at 08:00; the service is down from 08:30 on day 1 to 20:30 on day 2 (36 h);
    posts kept arriving at the feeds meanwhile. One digest goes out at 20:30 with all of them."""
    day1 = datetime(2025, 3, 10, 8, 0, tzinfo=UTC)
    sub = active(dctx, watermark=day1 - timedelta(days=1))
    assert send_due(dctx, now=day1).empty == 1  # day 1: nothing had arrived yet
    [first] = digests(db, sub)
    ingest(db, dsettings, feed_server, story_feeds())
    with db.connection() as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM posts ORDER BY id").fetchall()]
        for i, post_id in enumerate(ids):  # arrivals spread over the outage, the first just after day 1's digest
            conn.execute("UPDATE posts SET first_seen_at = %(t)s WHERE id = %(id)s",
                         {"t": first.window_end + timedelta(hours=i * 36 / len(ids)), "id": post_id})
    back = day1 + timedelta(hours=36, minutes=30)
    report = send_due(dctx, now=back)
    assert (report.sent, report.claimed) == (1, 1), "one email for the whole gap, not one per missed day"
    assert len(smtp.to("analyst@example.org")) == 1
    [_, second] = digests(db, sub)
    assert (second.window_start, second.items) == (first.window_end, len(ids))
    assert second.period == back.date()
    assert send_due(dctx, now=day1 + timedelta(days=2)).sent == 0  # day 3, 08:00: nothing new, nothing sent
    [_, _, third] = digests(db, sub)
    assert (third.state, third.window_start) == ("empty", second.window_end)


@pytest.mark.parametrize(("zone", "hour", "day"), [
    ("America/New_York", 2, datetime(2025, 3, 9, tzinfo=UTC)),  # 02:00 does not exist that night
    ("America/New_York", 1, datetime(2025, 11, 2, tzinfo=UTC)),  # 01:00 happens twice
    ("Europe/Berlin", 2, datetime(2025, 3, 30, tzinfo=UTC)),
    ("Europe/Berlin", 2, datetime(2025, 10, 26, tzinfo=UTC)),
])
def test_a_dst_change_day_gives_one_digest(settings: Settings, db: Database, smtp: SmtpSink, dctx: DigestContext,
                                           zone: str, hour: int, day: datetime) -> None:
    ctx = DigestContext.create(digest_settings(settings, smtp, digest_send_empty=True), db)
    sub = active(ctx, timezone=zone, send_hour=hour, watermark=day - timedelta(days=1))
    for step in range(0, 36 * 60, 20):  # every 20 minutes across the local day and beyond
        send_due(ctx, now=day + timedelta(minutes=step))
    periods = [d.period for d in digests(db, sub)]
    assert len(periods) == len(set(periods)), "one digest per local date"
    assert sum(1 for p in periods if p == day.date()) == 1
    assert all(r.message["Message-ID"] for r in smtp.received)
    assert len(smtp.received) == len(periods)


class Crash(BaseException):
    """The process dies: not an error anybody catches."""


class CrashAfterSending:
    """Delivers through SMTP and dies before the caller can record that it did."""

    def __init__(self, inner: Sender) -> None:
        self.inner = inner

    def send(self, message: object, recipient: str) -> Outcome:
        self.inner.send(message, recipient)  # type: ignore[arg-type]
        raise Crash

    def close(self) -> None:
        self.inner.close()


def test_a_crash_after_the_server_accepted_is_resent_once_with_the_same_message_id(
        dctx: DigestContext, dsettings: Settings, db: Database, feed_server: FeedServer, smtp: SmtpSink) -> None:
    with_posts(db, dsettings, feed_server, T0 - timedelta(hours=3))
    sub = active(dctx, watermark=T0 - timedelta(days=1))
    with pytest.raises(Crash):
        send_due(dctx, now=T0, sender=CrashAfterSending(SmtpSender(dsettings)))  # type: ignore[arg-type]
    [row] = digests(db, sub)
    assert (row.state, row.attempts) == ("sending", 1), "the attempt was recorded before sending"
    assert send_due(dctx, now=T0 + timedelta(minutes=5)).sent == 0, "not while the lease may still be alive"
    report = send_due(dctx, now=T0 + LEASE + timedelta(minutes=1))
    assert (report.recovered, report.sent) == (1, 1)
    first, second = smtp.to("analyst@example.org")
    assert first["Message-ID"] == second["Message-ID"], "receivers can drop the repeat"
    [row] = digests(db, sub)
    assert (row.state, row.attempts, row.uncertain) == ("sent", 2, True)
    assert send_due(dctx, now=T0 + timedelta(hours=3)).sent == 0
    assert len(smtp.received) == 2


def test_a_hard_bounce_stops_the_subscription(dctx: DigestContext, dsettings: Settings, db: Database,
                                              feed_server: FeedServer, smtp: SmtpSink) -> None:
    with_posts(db, dsettings, feed_server, T0 - timedelta(hours=3))
    gone = active(dctx, "gone@example.org", watermark=T0 - timedelta(days=1))
    fine = active(dctx, "fine@example.org", watermark=T0 - timedelta(days=1))
    smtp.hard_bounce.add("gone@example.org")
    report = send_due(dctx, now=T0)
    assert (report.sent, report.bounced) == (1, 1)
    with db.connection() as conn:
        assert subs_db.get(conn, gone).state == "bouncing"  # type: ignore[union-attr]
    assert send_due(dctx, now=T0 + timedelta(days=1)).claimed == 1, "only the live address is due next day"
    assert [d.state for d in digests(db, gone)] == ["failed"]
    assert len(digests(db, fine)) == 2


def test_without_a_mail_server_digests_go_to_a_maildir_once(settings: Settings, db: Database,
                                                            feed_server: FeedServer, dctx: DigestContext) -> None:
    local = digest_settings(settings, None)
    ctx = DigestContext.create(local, db)
    with_posts(db, local, feed_server, T0 - timedelta(hours=3))
    active(ctx, watermark=T0 - timedelta(days=1))
    folder = local.data_dir / "mail"
    with pytest.raises(Crash):
        send_due(ctx, now=T0, sender=CrashAfterSending(MaildirSender(folder)))  # type: ignore[arg-type]
    assert send_due(ctx, now=T0 + LEASE + timedelta(minutes=1)).sent == 1
    [file] = (folder / "new").iterdir()
    data = file.read_bytes()
    assert b"Subject: " in data and b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in data
    assert list((folder / "tmp").iterdir()) == []


def test_the_next_digest_needs_its_send_hour(dctx: DigestContext, smtp: SmtpSink, db: Database) -> None:
    sub = active(dctx, timezone="Asia/Almaty", send_hour=9, watermark=later(-60 * 24))  # 09:00 at UTC+5
    assert send_due(dctx, now=datetime(2025, 3, 10, 3, 59, tzinfo=UTC)).claimed == 0
    assert send_due(dctx, now=datetime(2025, 3, 10, 4, 0, tzinfo=UTC)).claimed == 1
    assert digests(db, sub)[0].period.isoformat() == "2025-03-10"
