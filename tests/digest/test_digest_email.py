"""The digest email as a reader's mail client sees it: parsed back from what a real SMTP server
received, over posts ingested through the real pipeline."""

from __future__ import annotations

import re
from email.message import EmailMessage
from pathlib import Path

from aggregator.config import Settings
from aggregator.db import Database
from aggregator.digest.context import DigestContext
from aggregator.digest.delivery import send_due
from tests.digest.conftest import PUBLIC, active, ingest, later, seed_feed, story_feeds
from tests.support import queries
from tests.support.feedserver import FeedServer
from tests.support.smtp import SmtpSink


def parts(message: EmailMessage) -> tuple[str, str]:
    assert message.get_content_type() == "multipart/alternative"
    kinds = [p.get_content_type() for p in message.iter_parts()]
    assert kinds == ["text/plain", "text/html"], "text first, HTML last: clients show the last they can"
    text, html = (p.get_content() for p in message.iter_parts())
    return text, html


def links(html: str) -> list[str]:
    return re.findall(r'href="([^"]+)"', html)


def test_a_kazakhstan_digest_carries_the_seed_post_and_nothing_unrelated(
        dctx: DigestContext, dsettings: Settings, db: Database, feed_server: FeedServer, smtp: SmtpSink,
        shared_data: Path) -> None:
    ingest(db, dsettings, feed_server, {"/window.atom": seed_feed(shared_data), **story_feeds()})
    sub = active(dctx, countries=["KZ"], timezone="Asia/Almaty")
    report = send_due(dctx, now=later(), force=True)
    assert (report.sent, report.failed) == (1, 0), report.errors
    [message] = smtp.to("analyst@example.org")
    text, html = parts(message)
    assert "Kazakhstan and Russia Increase Security Cooperation" in html
    assert "Kazakhstan and Russia Increase Security Cooperation" in text
    for unrelated in ("Brazil", "Tbilisi", "Kyrgyz parliament", "Caspian gas pipeline"):
        assert unrelated not in text and unrelated not in html, unrelated
    assert re.fullmatch(r"\d+ new: Kazakhstan", str(message["Subject"]))
    with db.connection() as conn:
        [row] = queries.digests_of_subscription(conn, sub)
    assert row.state == "sent" and row.message_id == message["Message-ID"]
    stories = text.count("\n* ")
    assert message["Subject"] == f"{stories} new: Kazakhstan"
    assert row.items == stories + 1, "the raid's two posts are one story"


def test_headers_links_and_one_story_per_event(dctx: DigestContext, dsettings: Settings, db: Database,
                                               feed_server: FeedServer, smtp: SmtpSink) -> None:
    ingest(db, dsettings, feed_server, story_feeds())
    sub = active(dctx, countries=["KZ"])
    send_due(dctx, now=later(), force=True)
    [message] = smtp.to("analyst@example.org")
    text, html = parts(message)
    raw = smtp.received[0].data
    assert b"\r\nList-Unsubscribe: <https://" in raw, "plain ASCII, not RFC 2047-encoded: providers read it raw"
    assert message["From"] == "Security digest <digest@example.org>"
    assert message["Message-ID"].endswith("@example.org>")
    unsubscribe = re.findall(r"<([^>]+)>", message["List-Unsubscribe"])
    assert len(unsubscribe) == 2
    assert unsubscribe[0].startswith(f"{PUBLIC}/subscriptions/unsubscribe/{sub}.")
    assert unsubscribe[1].startswith("mailto:digest@example.org?subject=unsubscribe%20")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsubscribe[0] in links(html) and unsubscribe[0] in text
    assert any(link.startswith(f"{PUBLIC}/subscriptions/manage/{sub}.") for link in links(html))
    assert "https://steppewire.example/2025/03/almaty-raid" in links(html) or \
        "https://caspiandaily.example/news/48213" in links(html)
    # the raid: two posts (two URLs, near-identical titles) -> one item, the other source named
    assert html.count("suspected militants in Almaty region raid") == 1
    assert text.count("suspected militants in Almaty region raid") == 1
    # the border deal: one post under one URL from two feeds -> one item, the other source named
    assert html.count("sign border demarcation agreement") == 1
    assert len(re.findall(r"Also reported by (Steppe Wire|Caspian Daily)", text)) == 2
