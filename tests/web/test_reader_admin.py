"""The sources page's admin actions: read-only without the admin key; with it (typed into a form,
kept as a SameSite=Strict HttpOnly cookie that is not the key), plain forms that add, disable,
enable, poll and remove sources, refused from another site, with errors said on the page."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from lxml import html as lxml_html

from aggregator.db import sources as sources_db
from aggregator.runtime import build_web_app
from aggregator.web.reader import READER_POLICY
from aggregator.web.source_pages import COOKIE, AdminSessions
from tests.api.conftest import ADMIN_KEY, Corpus, TestClient, api_settings
from tests.api.conftest import corpus as corpus

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def alert(body: str) -> str:
    found = lxml_html.fromstring(body).cssselect("[role=alert]")
    return found[0].text_content().strip() if found else ""


def notice(body: str) -> str:
    found = lxml_html.fromstring(body).cssselect("[role=status]")
    return found[0].text_content().strip() if found else ""


def actions(body: str) -> list[str]:
    return [f.get("action") for f in lxml_html.fromstring(body).cssselect(".actions form")]


@pytest.fixture
def admin(corpus: Corpus) -> TestClient:
    """The corpus's client, signed in (and signed out again afterwards)."""
    client = corpus.client
    answer = client.post("/sources/login", data={"key": ADMIN_KEY}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/sources?done=signed-in"
    yield client
    client.post("/sources/logout")
    client.cookies.clear()


def source(corpus: Corpus, source_id: int) -> sources_db.Source | None:
    with corpus.db.connection() as conn:
        return sources_db.get(conn, source_id)


def test_without_the_key_the_page_is_read_only(corpus: Corpus) -> None:
    corpus.client.cookies.clear()
    page = corpus.client.get("/sources")
    assert page.status_code == 200 and actions(page.text) == []
    assert lxml_html.fromstring(page.text).cssselect("form[action='/sources/login'] input[type=password]")
    first = next(iter(corpus.sources.values()))
    refused = corpus.client.post(f"/sources/{first}/disable")
    assert refused.status_code == 401 and "Sign in with the admin key first" in alert(refused.text)
    assert source(corpus, first).enabled  # type: ignore[union-attr]


def test_a_wrong_or_forged_key_is_refused(corpus: Corpus) -> None:
    corpus.client.cookies.clear()
    wrong = corpus.client.post("/sources/login", data={"key": ADMIN_KEY + "x"}, follow_redirects=False)
    assert wrong.status_code == 401 and alert(wrong.text) == "That is not the admin key."
    assert COOKIE not in wrong.cookies
    first = next(iter(corpus.sources.values()))
    expired = AdminSessions(ADMIN_KEY).issue(time.time() - 9 * 3600)
    forged = AdminSessions("another key").issue(time.time())
    for cookie in (expired, forged, "99999999999.00", f"{int(time.time()) + 60}.", ADMIN_KEY):
        corpus.client.cookies.set(COOKIE, cookie, path="/sources")
        answer = corpus.client.post(f"/sources/{first}/disable")
        assert answer.status_code == 401, cookie
    corpus.client.cookies.set(COOKIE, AdminSessions(ADMIN_KEY).issue(time.time()), path="/sources")
    assert actions(corpus.client.get("/sources").text)  # the same way, a real session is taken
    corpus.client.cookies.clear()
    assert source(corpus, first).enabled  # type: ignore[union-attr]


def test_signing_in_sets_a_strict_http_only_cookie_that_is_not_the_key(corpus: Corpus) -> None:
    corpus.client.cookies.clear()
    answer = corpus.client.post("/sources/login", data={"key": ADMIN_KEY}, follow_redirects=False)
    header = answer.headers["set-cookie"]
    assert "HttpOnly" in header and "SameSite=strict" in header and "Path=/sources" in header
    assert ADMIN_KEY not in header and ADMIN_KEY not in answer.headers["location"]
    page = corpus.client.get(answer.headers["location"])
    assert notice(page.text).startswith("Signed in")
    assert page.headers["cache-control"] == "no-store" and "Cookie" in page.headers["vary"]
    assert page.headers["content-security-policy"] == READER_POLICY
    assert "<script>" not in page.text and " onclick" not in page.text
    corpus.client.post("/sources/logout")
    assert actions(corpus.client.get("/sources").text) == []


def test_disable_enable_and_poll_now(admin: TestClient, corpus: Corpus) -> None:
    first = corpus.sources["/kabul-wire.rss"]
    assert f"/sources/{first}/disable" in actions(admin.get("/sources").text)
    done = admin.post(f"/sources/{first}/disable", follow_redirects=False)
    assert done.status_code == 303
    page = admin.get(done.headers["location"])
    assert notice(page.text).startswith("Disabled ") and f"/sources/{first}/enable" in actions(page.text)
    assert not source(corpus, first).enabled  # type: ignore[union-attr]
    busy = admin.post(f"/sources/{first}/poll")
    assert busy.status_code == 409 and "is disabled: enable it to poll it" in alert(busy.text)
    assert notice(admin.post(f"/sources/{first}/enable").text).startswith("Enabled ")
    assert source(corpus, first).enabled  # type: ignore[union-attr]
    with corpus.db.connection() as conn:
        conn.execute("UPDATE sources SET next_poll_at = now() + interval '1 hour' WHERE id = %(id)s", {"id": first})
    assert "is due now" in notice(admin.post(f"/sources/{first}/poll").text)
    assert source(corpus, first).next_poll_at <= datetime.now(UTC)  # type: ignore[union-attr]


def test_adding_a_feed_goes_through_the_one_check_and_says_what_is_wrong(admin: TestClient, corpus: Corpus) -> None:
    bad = admin.post("/sources/add", data={"url": "ftp://example.org/feed", "name": "Kept name", "countries": "KZ"})
    assert bad.status_code == 400 and alert(bad.text).startswith("The feed was not added: the feed address:")
    form = lxml_html.fromstring(bad.text)
    assert form.cssselect("#add-name")[0].get("value") == "Kept name"  # what was typed is kept
    unknown = admin.post("/sources/add", data={"url": "https://example.org/feed.xml", "countries": "XX"})
    assert unknown.status_code == 400 and "the countries:" in alert(unknown.text)
    added = admin.post("/sources/add", data={"url": "https://example.org/feed.xml", "name": "Example",
                                             "countries": "kz, uz", "topics": "terrorism"}, follow_redirects=False)
    assert added.status_code == 303
    with corpus.db.connection() as conn:
        new = sources_db.get_by_url(conn, "https://example.org/feed.xml")
    assert new is not None and new.origin == "api" and new.default_countries == ["KZ", "UZ"]
    assert notice(admin.get(added.headers["location"]).text) == "Added Example. It is polled at the next tick."
    again = admin.post("/sources/add", data={"url": "https://example.org/feed.xml"})
    assert "was known already" in notice(again.text)


def test_removing_asks_first_and_keeps_the_posts(admin: TestClient, corpus: Corpus) -> None:
    with corpus.db.connection() as conn:
        extra, _ = sources_db.add(conn, sources_db.SourceSpec("https://example.org/remove-me.xml"), origin="cli",
                                  poll_interval=3600)
        posts = conn.execute("SELECT count(*) FROM posts").fetchone()
    ask = admin.get(f"/sources/{extra.id}/remove")
    assert ask.status_code == 200 and "Its posts stay" in ask.text
    assert lxml_html.fromstring(ask.text).cssselect(f"form[action='/sources/{extra.id}/remove'][method=post]")
    gone = admin.post(f"/sources/{extra.id}/remove")
    assert notice(gone.text) == "Removed the source. Its posts stay."
    assert source(corpus, extra.id) is None
    with corpus.db.connection() as conn:
        assert conn.execute("SELECT count(*) FROM posts").fetchone() == posts
    again = admin.post(f"/sources/{extra.id}/remove")
    assert again.status_code == 404 and "does not exist" in alert(again.text)


def test_a_post_from_another_site_changes_nothing(admin: TestClient, corpus: Corpus) -> None:
    first = corpus.sources["/steppe-watch.atom"]
    for site in ("cross-site", "same-site"):
        answer = admin.post(f"/sources/{first}/disable", headers={"Sec-Fetch-Site": site})
        assert answer.status_code == 403 and "this site's own sources page" in alert(answer.text)
    assert source(corpus, first).enabled  # type: ignore[union-attr]
    assert admin.post("/sources/add", content=b'{"url": "https://example.org/x"}',
                      headers={"Content-Type": "application/json"}).status_code == 415


def test_without_an_admin_key_configured_nobody_signs_in(database_url: str, tmp_path_factory: pytest.TempPathFactory,
                                                         corpus: Corpus) -> None:
    settings = api_settings(database_url, tmp_path_factory.mktemp("nokey"), admin_api_key=None,
                            api_facets_refresh_seconds=0.0)
    with TestClient(build_web_app(settings, corpus.db)) as client:
        page = client.get("/sources")
        assert "no admin key is configured" in page.text and "/sources/login" not in page.text
        answer = client.post("/sources/login", data={"key": ""})
        assert answer.status_code == 403 and "No admin key is configured" in alert(answer.text)
