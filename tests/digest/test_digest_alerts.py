"""A surge on what a digest's filter names is at the top of that digest, and only of that one."""

from __future__ import annotations

from datetime import timedelta

from aggregator.db import Database
from aggregator.db import sources as sources_db
from aggregator.db.sources import SourceSpec
from aggregator.digest.context import DigestContext
from aggregator.digest.delivery import send_due
from tests.api.test_alerts import TODAY, add_story
from tests.digest.conftest import active, later
from tests.digest.test_digest_email import parts
from tests.support.smtp import SmtpSink


def test_a_surge_heads_the_digests_that_name_it(dctx: DigestContext, db: Database, smtp: SmtpSink) -> None:
    with db.connection() as conn:
        source, _ = sources_db.add(conn, SourceSpec("http://history.example/feed"), origin="cli", poll_interval=3600)
        for day in range(1, 29):
            for n in range(2):
                add_story(conn, source.id, f"KG-{day}-{n}", TODAY - timedelta(days=day, hours=-9), "KG")
                add_story(conn, source.id, f"UZ-{day}-{n}", TODAY - timedelta(days=day, hours=-9), "UZ")
        for n in range(9):
            add_story(conn, source.id, f"KG-today-{n}", TODAY + timedelta(minutes=n), "KG")
        for n in range(2):
            add_story(conn, source.id, f"UZ-today-{n}", TODAY + timedelta(minutes=n), "UZ")
    active(dctx, "kg@example.org", countries=["KG"])
    active(dctx, "uz@example.org", countries=["UZ"])
    report = send_due(dctx, now=later(), force=True)
    assert (report.sent, report.failed) == (2, 0), report.errors
    kg_text, kg_html = parts(smtp.to("kg@example.org")[0])
    uz_text, uz_html = parts(smtp.to("uz@example.org")[0])
    line = "Kyrgyzstan: 9 new stories today (usually 2)"
    assert kg_text.index(line) < kg_text.index("== ") and line in kg_html
    assert "Surge alert" not in uz_text and "Surge alert" not in uz_html
