"""A secret in a feed URL is never shown: not by the public source list, the CLI, an OPML export
or a log line; and credentials in a URL are refused wherever a source comes in.

The secrets: a key in a feed's query string (accepted: some feeds need one), and credentials in
a URL stored before they were refused (written straight into the table, as an old database
would hold them). Each scenario also checks that the secret was really there and used (the
feed server saw the key), so the test cannot pass by exercising nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.cli import main
from aggregator.config import Settings
from aggregator.db import Database
from aggregator.runtime import build_web_app
from tests.api.conftest import ADMIN_KEY, TestClient
from tests.support.environment import use_cli_environment
from tests.support.feedserver import RSS_SAMPLE, FeedServer

KEY = "K3y-5ecret-81f0"
PASSWORD = "Pa55-legacy-2c9d"
LEGACY = f"https://olduser:{PASSWORD}@legacy.example/feed"


def store_legacy_source(db: Database) -> None:
    """A source with credentials in its URL and in its last error, as an older version stored it."""
    with db.connection() as conn:
        conn.execute(
            """
            INSERT INTO sources (url, poll_interval, last_error, last_error_kind, consecutive_failures)
            VALUES (%(url)s, 3600, %(error)s, 'http_401', 1)
            """,
            {"url": LEGACY, "error": f"Client error '401 Unauthorized' for url '{LEGACY}'"},
        )


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings, db: Database, tmp_path: Path) -> Iterator[None]:
    use_cli_environment(monkeypatch, settings.database_url or "", tmp_path, AGGREGATOR_ALLOW_PRIVATE_NETWORKS="true")
    yield


def test_public_source_list_masks_keys_and_credentials(db: Database, settings: Settings) -> None:
    store_legacy_source(db)
    settings = settings.model_copy(update={"admin_api_key": Settings(admin_api_key=ADMIN_KEY).admin_api_key})
    with TestClient(build_web_app(settings, db)) as client:
        created = client.post("/api/v1/sources", headers={"X-API-Key": ADMIN_KEY},
                              json={"url": f"https://keyed.example/rss?api_key={KEY}&page=1"})
        assert created.status_code == 201, created.text
        assert created.json()["url"] == "https://keyed.example/rss?api_key=***&page=1"
        listed = client.get("/api/v1/sources")
        one = client.get(f"/api/v1/sources/{created.json()['id']}")
    assert listed.status_code == 200 and len(listed.json()) == 2
    legacy = next(s for s in listed.json() if "legacy.example" in s["url"])
    assert legacy["url"] == "https://***@legacy.example/feed"
    assert legacy["last_error"] == "Client error '401 Unauthorized' for url 'https://***@legacy.example/feed'"
    for text in (created.text, listed.text, one.text):
        assert KEY not in text and PASSWORD not in text and "olduser" not in text
    with db.connection() as conn:  # stored as given: the fetcher needs the key
        assert conn.execute("SELECT count(*) FROM sources WHERE url LIKE %s", [f"%{KEY}%"]).fetchone() == (1,)


def test_cli_listing_and_export_mask_secrets(cli_env: None, db: Database, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    store_legacy_source(db)
    assert main(["feeds", "add", f"https://keyed.example/rss?token={KEY}"]) == 0
    assert main(["feeds", "list"]) == 0
    assert main(["feeds", "list", "--json"]) == 0
    assert main(["feeds", "export-opml"]) == 0
    captured = capsys.readouterr()
    shown = captured.out + captured.err
    assert "https://keyed.example/rss?token=***" in captured.out and "https://***@legacy.example/feed" in shown
    assert KEY not in shown and PASSWORD not in shown
    assert "2 feed URL(s) carry a key or token, written as ***; --with-secrets" in captured.err
    out = tmp_path / "all.opml"
    assert main(["feeds", "export-opml", "--with-secrets", "-o", str(out)]) == 0
    assert f"token={KEY}" in out.read_text() and PASSWORD in out.read_text()  # asked for: written whole


def test_logs_and_poll_output_mask_the_key(cli_env: None, db: Database, feed_server: FeedServer,
                                           capfd: pytest.CaptureFixture[str]) -> None:
    feed_server.serve("/private", b"", status=404)
    url = feed_server.url(f"/private?api_key={KEY}")
    assert main(["feeds", "add", url]) == 0
    assert main(["poll", "--all"]) == 0
    captured = capfd.readouterr()
    assert [r.path for r in feed_server.requests] == [f"/private?api_key={KEY}"]  # the key was used
    assert "http_404" in captured.out and "poll." in captured.err  # the failure was printed and logged
    assert KEY not in captured.out + captured.err
    assert "api_key=***" in captured.err


def test_a_redirect_to_a_url_with_credentials_is_followed_but_not_stored(
        cli_env: None, db: Database, feed_server: FeedServer, capsys: pytest.CaptureFixture[str]) -> None:
    feed_server.serve("/feed", RSS_SAMPLE)
    target = feed_server.url("/feed").replace("http://", f"http://reader:{PASSWORD}@")
    feed_server.redirect("/old", target, status=301)
    url = feed_server.url("/old")
    assert main(["feeds", "add", url]) == 0
    assert main(["poll", "--all"]) == 0
    out = capsys.readouterr().out
    assert "new=1" in out and PASSWORD not in out
    with db.connection() as conn:
        assert conn.execute("SELECT url, previous_urls FROM sources").fetchone() == (url, [])


@pytest.mark.parametrize("url", [f"http://user:{PASSWORD}@example.org/feed", f"https://{PASSWORD}@example.org/"])
def test_credentials_are_refused_on_every_way_in(url: str, cli_env: None, db: Database, settings: Settings,
                                                 tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from aggregator.errors import ConfigError
    from aggregator.sources.registry import sync_feeds_file

    assert main(["feeds", "add", url]) == 1
    opml = tmp_path / "in.opml"
    opml.write_text(f'<opml version="2.0"><body><outline text="x" xmlUrl="{url}"/></body></opml>')
    assert main(["feeds", "import-opml", str(opml)]) == 1
    settings.feeds_file.write_text(f"feeds:\n  - url: {url}\n")
    with pytest.raises(ConfigError) as refused:
        sync_feeds_file(db, settings)
    captured = capsys.readouterr()
    for text in (captured.out, captured.err, str(refused.value)):
        assert PASSWORD not in text
    assert captured.err.count("a user name or password in a feed URL is refused") == 2
    assert "a user name or password in a feed URL is refused" in str(refused.value)
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) FROM sources").fetchone() == (0,)


def test_posts_facets_and_filtered_feeds_mask_the_key_of_their_source(
        db: Database, settings: Settings, feed_server: FeedServer) -> None:
    """A source without a name is named by its URL wherever its posts are shown."""
    from tests.support.polling import serve_and_poll

    path = f"/keyed?api_key={KEY}"
    outcome = serve_and_poll(db, settings, feed_server, {path: RSS_SAMPLE})[path]
    assert outcome.new_posts == 1
    with TestClient(build_web_app(settings, db)) as client:
        responses = [client.get("/api/v1/posts"), client.get("/api/v1/posts/1"),
                     client.get("/api/v1/facets", params={"source": outcome.source_id}),
                     client.get("/feeds/atom", params={"source": outcome.source_id}),
                     client.get("/feeds/json", params={"source": outcome.source_id})]
    for response in responses:
        assert response.status_code == 200, response.text
        assert KEY not in response.text, response.request.url
    assert "api_key=***" in responses[0].text and "api_key=***" in responses[3].text
