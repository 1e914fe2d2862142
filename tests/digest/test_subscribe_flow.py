"""Subscribing through the API and the form, double opt-in, and the signed links, against the real
app, a real SMTP server and the real database."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from aggregator.config import Settings
from aggregator.db import Database
from aggregator.db import subscriptions as subs_db
from aggregator.digest import tokens
from aggregator.digest.context import DigestContext
from aggregator.digest.delivery import send_due
from aggregator.runtime import build_web_app
from tests.digest.conftest import PUBLIC, TestClient, active, later
from tests.support.smtp import SmtpSink

BODY = {"email": "Analyst@Example.ORG", "countries": ["kz"], "topics": ["terrorism"], "timezone": "Asia/Almaty",
        "send_hour": 9}


@pytest.fixture
def client(dsettings: Settings, db: Database, dctx: DigestContext) -> Iterator[TestClient]:
    with TestClient(build_web_app(dsettings, db)) as test_client:
        yield test_client


def state(db: Database, sub_id: int) -> str:
    with db.connection() as conn:
        sub = subs_db.get(conn, sub_id)
    assert sub is not None
    return sub.state


def only_link(smtp: SmtpSink, address: str, path: str) -> str:
    [message] = smtp.wait_for(lambda got: len(got) == 1) and smtp.to(address)
    body = message.get_body(("plain",))
    assert body is not None
    found = set(re.findall(r"https?://\S+", body.get_content()))
    html = message.get_body(("html",))
    if html is not None:  # text-only subscribers get a text-only confirmation
        found |= set(re.findall(r'href="([^"]+)"', html.get_content()))
    assert len(found) == 1, found
    [link] = found
    assert link.startswith(PUBLIC + path)
    return link.removeprefix(PUBLIC)


def test_api_subscription_is_confirmed_by_its_one_link_and_sends_nothing_before(
        client: TestClient, smtp: SmtpSink, db: Database, dctx: DigestContext) -> None:
    response = client.post("/api/v1/subscriptions", json=BODY)
    assert response.status_code == 202, response.text
    assert response.json()["email"] == "Analyst@example.org"  # the domain normalized, the local part kept
    path = only_link(smtp, "Analyst@example.org", "/subscriptions/confirm/")
    [message] = smtp.to("Analyst@example.org")
    assert message["Subject"] == "Confirm your daily digest: Kazakhstan · Terrorism"
    sub_id = int(path.rsplit("/", 1)[1].split(".")[0])

    send_due(dctx, now=later(), force=True)
    assert len(smtp.received) == 1, "nothing but the confirmation before confirming"

    page = client.get(path)
    assert page.status_code == 200 and "Confirm subscription" in page.text
    assert state(db, sub_id) == "pending", "opening the link (a mail scanner might) confirms nothing"
    done = client.post(path)
    assert done.status_code == 200 and "You are subscribed" in done.text
    assert state(db, sub_id) == "active"


def test_a_repeated_request_makes_no_twin_and_no_flood(client: TestClient, smtp: SmtpSink, db: Database) -> None:
    for email in ("Analyst@Example.ORG", "analyst@example.org", "ANALYST@example.org"):
        response = client.post("/api/v1/subscriptions", json={**BODY, "email": email, "countries": ["KZ"]})
        assert response.status_code == 202
    smtp.wait_for(lambda got: len(got) >= 1)
    with db.connection() as conn:
        assert len(subs_db.list_all(conn)) == 1
    assert len(smtp.received) == 1, "one confirmation, however often the form is sent"


@pytest.mark.parametrize(("body", "parameter"), [
    ({"email": "not an address"}, "email"),
    ({"email": "a@b"}, "email"),
    ({"email": "a@example.org", "countries": ["QQ"]}, "countries"),
    ({"email": "a@example.org", "topics": ["knitting"]}, "topics"),
    ({"email": "a@example.org", "timezone": "Mars/Olympus"}, "timezone"),
    ({"email": "a@example.org", "timezone": "../../etc/passwd"}, "timezone"),
    ({"email": "a@example.org", "send_hour": 24}, "send_hour"),
    ({"email": "a@example.org", "contries": ["KZ"]}, "contries"),
])
def test_bad_requests_name_the_field(client: TestClient, smtp: SmtpSink, body: dict[str, object],
                                     parameter: str) -> None:
    response = client.post("/api/v1/subscriptions", json=body)
    assert response.status_code in (400, 422), response.text
    assert response.json()["error"]["details"]["parameter"] == parameter
    assert smtp.received == []


def test_the_form_works_without_javascript(client: TestClient, smtp: SmtpSink, db: Database) -> None:
    page = client.get("/subscribe")
    assert page.status_code == 200 and "<script" not in page.text
    for name in ('name="email"', 'name="country"', 'name="region"', 'name="topic"', 'name="q"'):
        assert name in page.text
    form = "email=desk%40example.org&country=KZ&country=UZ&region=caucasus&topic=terrorism&q=drones&send_hour=7" \
           "&timezone=Europe%2FBerlin&format=text&country_other="
    done = client.post("/subscribe", content=form, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert done.status_code == 200 and "Check your inbox" in done.text
    only_link(smtp, "desk@example.org", "/subscriptions/confirm/")
    with db.connection() as conn:
        [sub] = subs_db.list_all(conn)
    assert sub.filter == {"country": ["KZ", "UZ"], "region": ["caucasus"], "topic": ["terrorism"], "q": "drones"}
    assert (sub.send_hour, sub.timezone, sub.format, sub.origin) == (7, "Europe/Berlin", "text", "form")
    bad = client.post("/subscribe", content="email=desk%40example.org&country_other=QQ",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert bad.status_code == 400 and "unknown code" in bad.text and 'value="desk@example.org"' in bad.text


def test_get_never_unsubscribes_and_post_does_at_once(client: TestClient, db: Database,
                                                      dctx: DigestContext) -> None:
    sub_id = active(dctx)
    path = dctx.links.unsubscribe(sub_id, datetime.now(UTC)).removeprefix(PUBLIC)
    for _ in range(2):
        page = client.get(path)
        assert page.status_code == 200 and "<form" in page.text
    assert state(db, sub_id) == "active"
    done = client.post(path, content="List-Unsubscribe=One-Click",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert done.status_code == 200 and "Unsubscribed" in done.text
    assert state(db, sub_id) == "unsubscribed"
    assert client.post(path).status_code == 200, "a second click is not an error"


def test_forged_expired_and_misused_tokens_are_refused(client: TestClient, db: Database,
                                                       dctx: DigestContext) -> None:
    victim = active(dctx, "victim@example.org")
    mine = active(dctx, "me@example.org")
    now = datetime.now(UTC)
    my_token = dctx.links.token("unsubscribe", mine, now)
    forged = [
        f"{victim}{my_token[len(str(mine)):]}",  # my signature on the victim's id
        tokens.sign(b"another-key", "unsubscribe", victim, now + timedelta(days=1)),
        dctx.links.token("manage", victim, now)[:-2] + "AA",
        tokens.sign(dctx.links.secret, "unsubscribe", victim, now - timedelta(seconds=1)),  # expired
        dctx.links.token("confirm", victim, now),  # right key, wrong purpose
        "garbage", "1.2", "99999999999999999999.zz.x",
    ]
    for token in forged:
        assert client.post(f"/subscriptions/unsubscribe/{token}").status_code == 400, token
        assert client.post(f"/subscriptions/manage/{token}", data={"send_hour": "3"}).status_code == 400, token
    assert state(db, victim) == "active"
    with db.connection() as conn:
        assert subs_db.get(conn, victim).send_hour == 8  # type: ignore[union-attr]
    expired = tokens.sign(dctx.links.secret, "confirm", victim, now - timedelta(hours=1))
    page = client.post(f"/subscriptions/confirm/{expired}")
    assert page.status_code == 400 and "expired" in page.text


def test_manage_link_changes_time_format_and_zone(client: TestClient, db: Database, dctx: DigestContext) -> None:
    sub_id = active(dctx)
    path = dctx.links.manage(sub_id, datetime.now(UTC)).removeprefix(PUBLIC)
    assert client.get(path).status_code == 200
    saved = client.post(path, data={"send_hour": "6", "timezone": "America/New_York", "format": "text"})
    assert saved.status_code == 200 and "Saved" in saved.text
    with db.connection() as conn:
        sub = subs_db.get(conn, sub_id)
    assert sub is not None and (sub.send_hour, sub.timezone, sub.format) == (6, "America/New_York", "text")
    assert client.post(path, data={"timezone": "Nowhere/Nope"}).status_code == 400
