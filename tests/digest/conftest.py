"""Fixtures of the digest tests: a real SMTP server, the digest context over the test database,
and posts ingested through the real pipeline from feeds served by the real local HTTP server."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path

import pytest

from aggregator.config import Settings
from aggregator.db import Database
from aggregator.db import subscriptions as subs_db
from aggregator.digest.context import DigestContext
from aggregator.digest.subscribe import SubscriptionRequest, subscribe
from tests.support.database import reset
from tests.support.feedserver import FeedServer
from tests.support.polling import serve_and_poll
from tests.support.smtp import SmtpSink

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: F401  (re-exported for the tests)

DATA = Path(__file__).resolve().parent.parent / "data" / "digest"
SEED = ("seed", "window-on-eurasia-2022-01-07.txt")
PUBLIC = "https://digest.example.org"
STORY_FEEDS = {"/steppe-wire.rss": "steppe_wire.rss", "/caspian-daily.rss": "caspian_daily.rss",
               "/world-desk.rss": "world_desk.rss"}


def digest_settings(settings: Settings, smtp: SmtpSink | None, **overrides: object) -> Settings:
    values: dict[str, object] = {
        **settings.model_dump(), "smtp_host": "127.0.0.1" if smtp else None, "smtp_port": smtp.port if smtp else 25,
        "smtp_tls": "none", "smtp_timeout": 5.0, "public_url": PUBLIC, "digest_secret": "test-secret-0123456789",
        "mail_from": "Security digest <digest@example.org>", "digest_retry_seconds": 60.0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def dsettings(settings: Settings, smtp: SmtpSink) -> Settings:
    return digest_settings(settings, smtp)


@pytest.fixture
def dctx(dsettings: Settings, db: Database) -> DigestContext:
    with db.connection() as conn:
        reset(conn, "digests")
    return DigestContext.create(dsettings, db)


def ingest(db: Database, settings: Settings, server: FeedServer, feeds: dict[str, bytes]) -> dict[str, int]:
    """Serve these feed bodies and poll them with the real worker and pipeline; path -> source id."""
    outcomes = serve_and_poll(db, settings, server, feeds)
    assert [o.outcome for o in outcomes.values()] == ["ok"] * len(feeds), [o.describe() for o in outcomes.values()]
    return {path: o.source_id for path, o in outcomes.items()}


def story_feeds() -> dict[str, bytes]:
    return {path: (DATA / name).read_bytes() for path, name in STORY_FEEDS.items()}


def seed_feed(shared_data: Path) -> bytes:
    """A Blogger-like Atom feed whose one entry is the seed post, read from the shared folder now."""
    lines = [line.strip() for line in (shared_data.joinpath(*SEED)).read_text(encoding="utf-8").splitlines()]
    text = [line for line in lines if line]
    title, body = text[1], text[3:]
    content = "".join(f"<p>{escape(p)}</p>" for p in body)
    template = (DATA / "seed_feed.atom").read_text(encoding="utf-8")
    return template.replace("{title}", escape(title)).replace("{content}", escape(content)).encode()


def active(ctx: DigestContext, email: str = "analyst@example.org", *, now: datetime | None = None,
           watermark: datetime | None = None, **request: object) -> int:
    """An active subscription (as if confirmed), covering arrivals from `watermark` on."""
    sub, _ = subscribe(ctx, SubscriptionRequest(email=email, **request), confirmed=True,  # type: ignore[arg-type]
                       now=now)
    with ctx.db.connection() as conn:
        conn.execute("UPDATE subscriptions SET watermark = %(w)s WHERE id = %(id)s",
                     {"w": watermark or datetime.now(UTC) - timedelta(days=1), "id": sub.id})
        assert subs_db.get(conn, sub.id) is not None
    return sub.id


def later(minutes: float = 15) -> datetime:
    """A `now` past the digest's settle lag, so posts ingested a moment ago are inside the window."""
    return datetime.now(UTC) + timedelta(minutes=minutes)
