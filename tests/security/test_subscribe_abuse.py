"""The subscribe endpoints cannot be used to mail-bomb someone: one pending subscription per address
whatever the filter, a cap on confirmation emails per address (held in the database, so across
processes), a cap on requests per client, and one answer whatever the address had.

Against the real app, the real database and a real SMTP server: what counts is the mail the
server received. Time passing is simulated by moving stored timestamps back, never by sleeping.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import urlencode

import psycopg
import pytest
from psycopg import sql

from aggregator.config import Settings
from aggregator.db import Database
from aggregator.db import migrate as migrate_db
from aggregator.db import subscriptions as subs_db
from aggregator.digest.context import DigestContext
from aggregator.digest.delivery import send_due
from aggregator.digest.subscribe import RESEND_AFTER
from aggregator.runtime import build_web_app
from aggregator.web.ratelimit import ClientLimiter, Limit, client_key, decide
from tests.digest.conftest import PUBLIC, TestClient, active, digest_settings, later
from tests.support.database import reset
from tests.support.smtp import SmtpSink

VICTIM = "victim@example.org"
FILTERS = [{"countries": ["KZ"]}, {"countries": ["UZ"]}, {"topics": ["terrorism"]}, {"regions": ["caucasus"]},
           {"countries": ["KG"], "topics": ["terrorism"]}, {"q": "border guards"}]
NO_CLIENT_LIMIT = {"subscribe_client_per_minute": 0, "subscribe_client_per_hour": 0}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def dctx(settings: Settings, smtp: SmtpSink, db: Database) -> DigestContext:
    """The digest context, over tables emptied of the previous test's subscriptions and counts."""
    with db.connection() as conn:
        reset(conn, "digests")
    return DigestContext.create(digest_settings(settings, smtp), db)


def app_client(settings: Settings, smtp: SmtpSink, db: Database, **overrides: object) -> TestClient:
    return TestClient(build_web_app(digest_settings(settings, smtp, **overrides), db))


@pytest.fixture
def client(settings: Settings, smtp: SmtpSink, db: Database, dctx: DigestContext) -> Iterator[TestClient]:
    with app_client(settings, smtp, db, **NO_CLIENT_LIMIT) as test_client:
        yield test_client


def api(client: TestClient, email: str = VICTIM, **body: object) -> dict[str, object]:
    response = client.post("/api/v1/subscriptions", json={"email": email, **body})
    assert response.status_code == 202, response.text
    return dict(response.json())


def form(client: TestClient, email: str = VICTIM, **fields: object) -> str:
    response = client.post("/subscribe", content=urlencode({"email": email, **fields}, doseq=True), headers=FORM)
    assert response.status_code == 200, response.text
    return response.text


def mail_to(smtp: SmtpSink, address: str = VICTIM) -> list[str]:
    """Subjects of what the SMTP server received for `address`. Confirmations are sent before the
    test client's request returns (a background task of the response), so this is final."""
    return [str(m["Subject"]) for m in smtp.to(address)]


def let_resend_wait_pass(db: Database) -> None:
    """As if RESEND_AFTER had passed since every confirmation went out (or was dropped)."""
    with db.connection() as conn:
        conn.execute("UPDATE subscriptions SET confirm_sent_at = confirm_sent_at - %(d)s "
                     "WHERE confirm_sent_at IS NOT NULL", {"d": RESEND_AFTER + timedelta(minutes=1)})


def let_address_window_pass(db: Database, hours: float) -> None:
    with db.connection() as conn:
        conn.execute("UPDATE confirmation_sends SET sent_at = sent_at - %(d)s",
                     {"d": timedelta(hours=hours, minutes=1)})


def subscriptions(db: Database) -> list[subs_db.Subscription]:
    with db.connection() as conn:
        return subs_db.list_all(conn, include_ended=True)


# One pending subscription per address


def test_varying_the_filter_sends_one_confirmation_and_the_link_confirms_the_newest(
        client: TestClient, smtp: SmtpSink, db: Database) -> None:
    for i, fields in enumerate(FILTERS):
        if i % 2:
            api(client, **fields)
        else:
            form(client, country=fields.get("countries", []), topic=fields.get("topics", []),
                 region=fields.get("regions", []), q=fields.get("q", ""))
    assert mail_to(smtp) == ["Confirm your daily digest: Kazakhstan"], "one confirmation, for the first request"
    [sub] = subscriptions(db)
    assert (sub.state, sub.filter) == ("pending", {"q": "border guards"}), "the newest request is the pending one"

    [message] = smtp.to(VICTIM)
    body = message.get_body(("plain",))
    assert body is not None
    [link] = {u for u in re.findall(r"https?://\S+", body.get_content()) if "/confirm/" in u}
    page = client.get(link.removeprefix(PUBLIC))
    assert "border guards" in page.text, "the confirm page names what the click will subscribe to"
    assert client.post(link.removeprefix(PUBLIC)).status_code == 200
    [sub] = subscriptions(db)
    assert (sub.state, sub.filter) == ("active", {"q": "border guards"})

    api(client, countries=["TJ"])  # active elsewhere: a new filter is a new pending subscription
    assert mail_to(smtp)[1:] == ["Confirm your daily digest: Tajikistan"]
    assert sorted(s.state for s in subscriptions(db)) == ["active", "pending"]


def test_a_new_filter_after_the_resend_wait_resends_once_for_the_newest(client: TestClient, smtp: SmtpSink,
                                                                         db: Database) -> None:
    api(client, countries=["KZ"])
    let_resend_wait_pass(db)
    api(client, countries=["UZ"])
    api(client, countries=["KG"])  # inside the new wait: taken over, not sent
    assert mail_to(smtp) == ["Confirm your daily digest: Kazakhstan", "Confirm your daily digest: Uzbekistan"]
    [sub] = subscriptions(db)
    assert sub.filter == {"country": ["KG"]}


def test_the_database_refuses_a_second_pending_subscription_to_an_address(
        client: TestClient, db: Database) -> None:
    api(client, countries=["KZ"])
    with pytest.raises(psycopg.errors.UniqueViolation), psycopg.connect(db.url) as conn:
        conn.execute("INSERT INTO subscriptions (email, filter, filter_key, timezone, send_hour) "
                     "VALUES ('VICTIM@example.org', '{}', '{}', 'UTC', 8)")


def test_the_migration_keeps_the_newest_of_several_pending_subscriptions(database_url: str) -> None:
    """A database the old rule filled: 0006 must apply, keeping one pending row per address."""
    name = f"aggregator_m6_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(database_url, dbname=name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(migrate_db._CREATE_TABLE)
            for migration in migrate_db.available_migrations()[:5]:
                conn.execute(migration.sql.encode())
                conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                             (migration.version, migration.name))
            for email, key, state in [("a@example.org", "1", "pending"), ("A@example.org", "2", "pending"),
                                      ("a@example.org", "3", "active"), ("b@example.org", "1", "pending")]:
                conn.execute("INSERT INTO subscriptions (email, filter, filter_key, timezone, send_hour, state, "
                             "confirm_sent_at) VALUES (%s, '{}', %s, 'UTC', 8, %s, now())", (email, key, state))
            assert migrate_db.migrate(conn) == [m.name for m in migrate_db.available_migrations()[5:]]
            rows = conn.execute("SELECT id, state FROM subscriptions ORDER BY id").fetchall()
            assert rows == [(1, "unsubscribed"), (2, "pending"), (3, "active"), (4, "pending")]
            sent = conn.execute("SELECT count(*) FROM confirmation_sends").fetchone()
            assert sent == (3,), "confirmations mailed in the last day count against the limit"
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# At most SUBSCRIBE_ADDRESS_LIMIT confirmations per address and window


def test_confirmations_to_one_address_stop_at_the_limit(client: TestClient, smtp: SmtpSink, db: Database,
                                                        dctx: DigestContext,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    answers = []
    for _ in range(5):
        answers.append(api(client, countries=["KZ"]))
        let_resend_wait_pass(db)
    assert len(mail_to(smtp)) == 3, "SUBSCRIBE_ADDRESS_LIMIT is 3 by default"
    assert all(a == answers[0] for a in answers), "over the limit, the answer is the same"
    [sub] = subscriptions(db)
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("aggregator")]
    limited = [line for line in ours if "confirmation_limited" in line]
    assert len(limited) == 2 and all(f"id={sub.id} " in line for line in limited)
    assert not [line for line in ours if "victim" in line.lower()], "no address in the logs"

    let_address_window_pass(db, 24)
    send_due(dctx, now=later(), force=True)
    assert len(mail_to(smtp)) == 3, "a confirmation over the limit is dropped, not sent once the window has room"
    api(client, countries=["KZ"])
    assert len(mail_to(smtp)) == 4, "a request once the window has room sends again"


def test_the_address_limit_holds_across_two_web_processes(settings: Settings, smtp: SmtpSink, db: Database,
                                                          dctx: DigestContext) -> None:
    """Two apps with their own pools and contexts on one database, as two uvicorn workers are."""
    other_db = Database(db.url, max_size=2)
    try:
        with app_client(settings, smtp, db, **NO_CLIENT_LIMIT) as first, \
                app_client(settings, smtp, other_db, **NO_CLIENT_LIMIT) as second:
            for i in range(6):
                api(first if i % 2 else second, f"Victim@{'EXAMPLE' if i % 3 else 'example'}.org",
                    countries=["KZ"])
                let_resend_wait_pass(db)
    finally:
        other_db.close()
    assert len(smtp.to("Victim@example.org")) == 3


# At most SUBSCRIBE_CLIENT_PER_MINUTE / _PER_HOUR requests per client


@pytest.mark.parametrize(("limits", "longest_wait"), [
    ({"subscribe_client_per_minute": 2, "subscribe_client_per_hour": 0}, 60),
    ({"subscribe_client_per_minute": 0, "subscribe_client_per_hour": 2}, 3600),
])
@pytest.mark.parametrize("endpoint", ["api", "form"])
def test_a_client_over_its_limit_is_answered_429_with_retry_after(
        settings: Settings, smtp: SmtpSink, db: Database, dctx: DigestContext, endpoint: str,
        limits: dict[str, int], longest_wait: int) -> None:
    with app_client(settings, smtp, db, **limits) as client:
        for i in range(2):
            if endpoint == "api":
                api(client, f"reader{i}@example.org")
            else:
                form(client, f"reader{i}@example.org")
        if endpoint == "api":
            refused = client.post("/api/v1/subscriptions", json={"email": "reader9@example.org"})
            assert refused.json()["error"]["code"] == "too_many_requests"
            assert set(refused.json()["error"]) == {"code", "message", "details"}
            assert refused.json()["error"]["details"]["retry_after"] == int(refused.headers["Retry-After"])
        else:
            refused = client.post("/subscribe", content="email=reader9%40example.org", headers=FORM)
            assert refused.headers["Content-Type"].startswith("text/html")
            assert "Too many requests" in refused.text
        assert refused.status_code == 429
        assert 0 < int(refused.headers["Retry-After"]) <= longest_wait
    assert len(smtp.received) == 2 and not smtp.to("reader9@example.org")
    assert len(subscriptions(db)) == 2, "a refused request stores nothing"


def test_the_api_and_the_form_share_one_budget_per_client(settings: Settings, smtp: SmtpSink, db: Database,
                                                          dctx: DigestContext) -> None:
    with app_client(settings, smtp, db, subscribe_client_per_minute=2, subscribe_client_per_hour=0) as client:
        api(client, "one@example.org")
        form(client, "two@example.org")
        assert client.post("/api/v1/subscriptions", json={"email": "three@example.org"}).status_code == 429
        assert client.post("/subscribe", content="email=three%40example.org", headers=FORM).status_code == 429


# One answer, whatever the address had


def test_the_answer_is_the_same_for_a_new_pending_active_or_limited_address(
        client: TestClient, smtp: SmtpSink, dctx: DigestContext, db: Database) -> None:
    """Each request spells the address its own way: an answer naming the address as stored would
    tell that an earlier request exists."""
    spellings = ["Analyst@Example.ORG", "analyst@example.org", "ANALYST@example.org"]

    def probe(email: str, **fields: object) -> dict[str, object]:
        answer = api(client, email, **fields)
        assert answer["email"] == email.split("@")[0] + "@example.org"  # the address as given, normalized
        return {**answer, "email": None}

    answers = [probe(spellings[0], countries=["KZ"])]  # new
    answers += [probe(e, countries=c) for c in (["KZ"], ["UZ"]) for e in spellings]  # pending, this or another
    active(dctx, "analyst@example.org", topics=["terrorism"])
    answers += [probe(e, topics=["terrorism"]) for e in spellings]  # active
    for e in spellings * 2:  # pending again, then over the confirmation limit
        let_resend_wait_pass(db)
        answers.append(probe(e, countries=["KG"]))
    assert len(smtp.received) == 3
    assert answers == [answers[0]] * 16

    pages = [form(client, "desk@example.org", country="KZ")]  # new
    api(client, "DESK@example.org", countries=["UZ"])
    pages.append(form(client, "desk@example.org", country="UZ"))  # pending, stored as DESK@
    active(dctx, "Desk@example.org", topics=["terrorism"])
    pages.append(form(client, "desk@example.org", topic="terrorism"))  # active, stored as Desk@
    assert pages == [pages[0]] * 3


# The limiter's arithmetic


MINUTE, HOUR = Limit(5, 60.0), Limit(20, 3600.0)


@pytest.mark.parametrize(("history", "now", "limits", "allowed", "retry_after"), [
    ((), 1000.0, [MINUTE, HOUR], True, 0.0),
    ((996.0, 997.0, 998.0, 999.0), 1000.0, [MINUTE, HOUR], True, 0.0),  # the 5th in a minute
    ((996.0, 997.0, 998.0, 999.0, 999.5), 1000.0, [MINUTE, HOUR], False, 56.0),  # the 6th waits for the 1st
    ((940.0, 997.0, 998.0, 999.0, 999.5), 1000.0, [MINUTE, HOUR], True, 0.0),  # the 1st left the window
    ((940.0, 997.0, 998.0, 999.0, 999.5), 999.9, [MINUTE, HOUR], False, 0.1),  # ... and a moment before
    ((941.0, 997.0, 998.0, 999.0, 999.5), 1000.0, [MINUTE, HOUR], False, 1.0),  # 1 s before it leaves
    (tuple(100.0 * i for i in range(20)), 3000.0, [MINUTE, HOUR], False, 600.0),  # the hour is full
    (tuple(100.0 * i for i in range(20)), 3600.0, [MINUTE, HOUR], True, 0.0),  # ... until 0.0 leaves it
    ((1.0, 2.0, 3.0, 4.0, 5.0), 50.0, [MINUTE, HOUR], False, 11.0),  # a burst, then a wait for its first
    ((10.0, 20.0, 30.0), 40.0, [Limit(3, 60.0), Limit(3, 3600.0)], False, 3570.0),  # the longest wait wins
    ((10.0, 20.0, 30.0), 40.0, [Limit(0, 60.0), Limit(0, 3600.0)], True, 0.0),  # 0: no limit
    ((10.0, 20.0, 30.0), 40.0, [], True, 0.0),
    ((10.0,), 11.0, [Limit(1, 60.0)], False, 59.0),
])
def test_decide(history: tuple[float, ...], now: float, limits: list[Limit], allowed: bool,
                retry_after: float) -> None:
    decision = decide(history, now, limits)
    assert (decision.allowed, decision.retry_after) == (allowed, pytest.approx(retry_after))


@pytest.mark.parametrize(("history", "now", "limits", "kept"), [
    ((1.0, 2.0, 3.0), 100.0, [Limit(5, 60.0)], (100.0,)),  # times out of every window are forgotten
    ((50.0, 90.0), 100.0, [Limit(5, 60.0), Limit(9, 30.0)], (50.0, 90.0, 100.0)),  # the longest window keeps
    ((50.0, 90.0, 95.0), 100.0, [Limit(3, 60.0)], (50.0, 90.0, 95.0)),  # refused: not counted
    ((50.0,), 100.0, [Limit(0, 60.0)], ()),  # nothing limited: nothing kept
])
def test_decide_keeps_only_what_a_window_still_counts(history: tuple[float, ...], now: float,
                                                      limits: list[Limit], kept: tuple[float, ...]) -> None:
    assert decide(history, now, limits).history == kept


def test_a_steady_client_is_held_to_the_limit() -> None:
    """Knocking every second for an hour: 20 requests get through, never 6 in one minute."""
    history: tuple[float, ...] = ()
    allowed = []
    for second in range(3600):
        decision = decide(history, float(second), [MINUTE, HOUR])
        history = decision.history
        if decision.allowed:
            allowed.append(second)
    assert len(allowed) == 20
    assert all(allowed[i + 5] - allowed[i] >= 60 for i in range(len(allowed) - 5))


def test_the_limiter_remembers_a_bounded_number_of_clients() -> None:
    limiter = ClientLimiter([MINUTE, HOUR], max_clients=100)
    for _ in range(5):
        assert limiter.check("192.0.2.1", 0.0) == 0
    assert limiter.check("192.0.2.1", 1.0) == pytest.approx(59.0)
    for i in range(10_000):  # a flood of distinct clients
        limiter.check(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", 2.0)
    assert len(limiter) == 100
    assert limiter.check("192.0.2.1", 3.0) == 0, "the least recently seen client is forgotten"
    unlimited = ClientLimiter([Limit(0, 60.0)])
    for i in range(1000):
        unlimited.check(str(i), 0.0)
    assert len(unlimited) == 0


@pytest.mark.parametrize(("host", "key"), [
    ("192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),  # one IPv6 line is one client
    ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
    ("::ffff:192.0.2.7", "192.0.2.7"),
    ("testclient", "testclient"),
    (None, "unknown"),
    ("", "unknown"),
])
def test_client_key(host: str | None, key: str) -> None:
    assert client_key(host) == key
