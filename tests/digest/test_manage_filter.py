"""The manage page (behind a digest's signed link) changes the filter too: countries, regions,
topics and words, checked as when subscribing; through the real app."""

from __future__ import annotations

import html
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from aggregator.config import Settings
from aggregator.db import Database
from aggregator.db import subscriptions as subs_db
from aggregator.db.subscriptions import Subscription
from aggregator.digest.context import DigestContext
from aggregator.digest.delivery import send_due
from aggregator.runtime import build_web_app
from tests.digest.conftest import PUBLIC, TestClient, active, ingest, story_feeds
from tests.support.feedserver import FeedServer
from tests.support.smtp import SmtpSink

READER = "reader@example.org"


@pytest.fixture
def client(dsettings: Settings, db: Database, dctx: DigestContext) -> Iterator[TestClient]:
    with TestClient(build_web_app(dsettings, db)) as test_client:
        yield test_client


def stored(db: Database, sub_id: int) -> Subscription:
    with db.connection() as conn:
        sub = subs_db.get(conn, sub_id)
    assert sub is not None
    return sub


def manage_path(dctx: DigestContext, sub_id: int) -> str:
    return dctx.links.manage(sub_id, datetime.now(UTC)).removeprefix(PUBLIC)


def test_the_page_shows_the_filter_and_saves_a_new_one(client: TestClient, db: Database,
                                                       dctx: DigestContext) -> None:
    sub_id = active(dctx, READER, countries=["KZ", "TR"], q="militants")
    path = manage_path(dctx, sub_id)
    page = client.get(path)
    assert page.status_code == 200
    assert 'value="KZ" checked' in page.text and 'name="country_other" value="TR"' in page.text
    assert 'name="q" value="militants"' in page.text

    saved = client.post(path, data={"filter": "1", "region": "central-asia", "topic": ["terrorism", "cyber"],
                                     "country_other": "cn; tr", "q": "border\r\n  guards", "send_hour": "7",
                                     "timezone": "Asia/Almaty", "format": "html"})
    assert saved.status_code == 200 and "Saved" in saved.text, saved.text
    sub = stored(db, sub_id)
    assert sub.filter == {"country": ["CN", "TR"], "region": ["central-asia"], "topic": ["cyber", "terrorism"],
                          "q": "border guards"}
    assert sub.filter_key == '{"country":["CN","TR"],"q":"border guards","region":["central-asia"],' \
                             '"topic":["cyber","terrorism"]}'
    assert (sub.send_hour, sub.timezone) == (7, "Asia/Almaty")
    assert "China · Türkiye · Central Asia" in saved.text  # the new filter in words

    everything = client.post(path, data={"filter": "1", "send_hour": "7", "timezone": "UTC"})
    assert everything.status_code == 200 and stored(db, sub_id).filter == {}, "no box ticked: everything"


def test_a_bad_filter_is_refused_as_when_subscribing(client: TestClient, db: Database, dctx: DigestContext) -> None:
    sub_id = active(dctx, READER, countries=["KZ"])
    other = active(dctx, READER, topics=["terrorism"])
    path = manage_path(dctx, sub_id)
    for data, says in [({"country_other": "XX"}, "countries: unknown code 'XX'"),
                       ({"topic": "gossip"}, "topics: unknown code 'gossip'"),
                       ({"q": "x" * 300}, "q: longer than 256 characters"),
                       ({"topic": "terrorism"}, "already gets a digest of that filter")]:
        refused = client.post(path, data={"filter": "1", "send_hour": "8", "timezone": "UTC", **data})
        assert refused.status_code == 400 and says in html.unescape(refused.text), (data, refused.text)
        assert stored(db, sub_id).filter == {"country": ["KZ"]}
    assert stored(db, other).filter == {"topic": ["terrorism"]}


def test_a_form_without_the_filter_keeps_it(client: TestClient, db: Database, dctx: DigestContext) -> None:
    sub_id = active(dctx, READER, countries=["KZ"], role="primary")
    path = manage_path(dctx, sub_id)
    assert client.post(path, data={"send_hour": "6"}).status_code == 200
    assert stored(db, sub_id).filter == {"country": ["KZ"], "role": "primary"}
    assert client.post(path, data={"filter": "1", "country": "UZ", "send_hour": "6"}).status_code == 200
    assert stored(db, sub_id).filter == {"country": ["UZ"], "role": "primary"}, "role is kept"


def test_the_next_digest_uses_the_new_filter(client: TestClient, db: Database, dctx: DigestContext,
                                             dsettings: Settings, smtp: SmtpSink, feed_server: FeedServer) -> None:
    sub_id = active(dctx, READER, countries=["MN"])
    ingest(db, dsettings, feed_server, story_feeds())
    assert client.post(manage_path(dctx, sub_id), data={"filter": "1", "country": "KZ"}).status_code == 200
    assert send_due(dctx, force=True).sent == 1
    [message] = smtp.to(READER)
    assert str(message["Subject"]).endswith(": Kazakhstan")
    assert "Almaty region raid" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
