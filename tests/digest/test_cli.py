"""`aggregator subscriptions …` and `aggregator digest …`, through argparse as the CLI wires them."""

from __future__ import annotations

import argparse
import json

import pytest

from aggregator.config import Settings
from aggregator.db import Database
from aggregator.digest.commands import add_cli
from aggregator.digest.context import DigestContext
from aggregator.errors import NotFoundError
from tests.digest.conftest import ingest, story_feeds
from tests.support.feedserver import FeedServer
from tests.support.smtp import SmtpSink


def run(settings: Settings, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="aggregator")
    add_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args, settings))


def test_subscriptions_and_digest_commands(dsettings: Settings, db: Database, dctx: DigestContext, smtp: SmtpSink,
                                           feed_server: FeedServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(dsettings, "subscriptions", "add", "Desk@Example.org", "--country", "kz", "--timezone",
               "Asia/Almaty", "--send-hour", "9") == 0
    assert "added: subscription 1 Desk@example.org [Kazakhstan] pending" in capsys.readouterr().out
    assert len(smtp.wait_for(lambda got: len(got) == 1)) == 1, "the confirmation"
    assert run(dsettings, "subscriptions", "add", "chief@example.org", "--topic", "terrorism", "--confirmed") == 0
    assert "active" in capsys.readouterr().out

    assert run(dsettings, "subscriptions", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(s["email"], s["state"], s["label"]) for s in listed] == [
        ("Desk@example.org", "pending", "Kazakhstan"), ("chief@example.org", "active", "Terrorism")]
    assert listed[0]["next_send"] is None and listed[1]["next_send"]

    ingest(db, dsettings, feed_server, story_feeds())
    with db.connection() as conn:
        conn.execute("UPDATE posts SET first_seen_at = now() - interval '1 hour'")
    assert run(dsettings, "digest", "preview", "--subscription", "2", "--text") == 0
    preview = capsys.readouterr().out
    assert "Almaty region raid" in preview and "Unsubscribe: https://" in preview
    assert len(smtp.received) == 1, "a preview sends nothing"

    assert run(dsettings, "digest", "send-due", "--now") == 0
    assert "sent 1" in capsys.readouterr().out
    assert [r.rcpt_tos for r in smtp.received] == [["Desk@example.org"], ["chief@example.org"]]
    assert run(dsettings, "digest", "send-due", "--now") == 0
    assert "sent 0" in capsys.readouterr().out and len(smtp.received) == 2, "--now still sends once a day"

    assert run(dsettings, "subscriptions", "remove", "CHIEF@example.org") == 0
    assert "unsubscribed 1" in capsys.readouterr().out
    with pytest.raises(NotFoundError):
        run(dsettings, "subscriptions", "remove", "404")
