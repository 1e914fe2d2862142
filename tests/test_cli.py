"""The `aggregator` command end to end: real database, real local feed server, real output."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from aggregator.cli import main
from aggregator.config import Settings
from aggregator.db import Database
from tests.support.environment import use_cli_environment
from tests.support.feedserver import RSS_SAMPLE, Exchange, FeedServer

BLOG = "tag:blogger.com,1999:blog-4242"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, settings: Settings, db: Database, tmp_path: Path) -> Iterator[None]:
    use_cli_environment(monkeypatch, settings.database_url or "", tmp_path,
                        AGGREGATOR_ALLOW_PRIVATE_NETWORKS="true")
    yield


def run(*args: str) -> int:
    return main(list(args))


def test_feeds_add_list_remove(env: None, feed_server: FeedServer, capsys: pytest.CaptureFixture[str]) -> None:
    feed_server.serve("/feed", RSS_SAMPLE)
    url = feed_server.url("/feed")
    assert run("feeds", "add", url, "--name", "Sample", "--country", "KZ") == 0
    assert "added feed" in capsys.readouterr().out
    assert run("poll", "--feed", url) == 0
    out = capsys.readouterr().out
    assert "ok" in out and "new=1" in out and "polled 1 feed(s): 1 new post(s), 0 failed" in out
    assert run("feeds", "list") == 0
    listing = capsys.readouterr().out
    assert "Sample" in listing and url in listing and "ok" in listing
    assert run("feeds", "remove", url) == 0
    assert "disabled feed" in capsys.readouterr().out
    assert run("feeds", "list", "--json") == 0
    assert '"enabled": false' in capsys.readouterr().out
    assert run("feeds", "remove", url, "--purge") == 0
    assert run("feeds", "remove", url) == 1
    assert "feed not found" in capsys.readouterr().err


def test_failing_feed_shows_its_error_in_the_list(env: None, feed_server: FeedServer,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    feed_server.serve("/gone", b"", status=404)
    url = feed_server.url("/gone")
    run("feeds", "add", url)
    assert run("poll", "--all") == 0
    assert "http_404" in capsys.readouterr().out
    run("feeds", "list")
    assert "failing" in (out := capsys.readouterr().out) and "last error" in out and "http_404" in out


def test_opml_round_trip(env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    opml = tmp_path / "in.opml"
    opml.write_text(
        '<?xml version="1.0"?><opml version="2.0"><head><title>x</title></head><body>'
        '<outline text="Region"><outline text="Eurasia &amp; more" type="rss" xmlUrl="https://a.example/feed"/>'
        '<outline text="B" xmlUrl="https://b.example/rss"/></outline>'
        '<outline text="no feed here"/></body></opml>')
    assert run("feeds", "import-opml", str(opml)) == 0
    assert "imported 2 feed(s)" in capsys.readouterr().out
    assert run("feeds", "import-opml", str(opml)) == 0
    assert "0 new, 2 already known" in capsys.readouterr().out
    out = tmp_path / "out.opml"
    assert run("feeds", "export-opml", "-o", str(out)) == 0
    exported = out.read_text()
    assert 'xmlUrl="https://a.example/feed"' in exported and "Eurasia &amp; more" in exported


def test_bad_opml_and_bad_urls_are_clear_errors(env: None, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.opml"
    bad.write_text("<opml><body><outline")
    assert run("feeds", "import-opml", str(bad)) == 1
    assert "not a valid OPML file" in capsys.readouterr().err
    assert run("feeds", "add", "javascript:alert(1)") == 1
    assert "not an http(s) URL" in capsys.readouterr().err


def test_migrate_and_settings(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("migrate") == 0
    assert "applied 0 migration(s)" in capsys.readouterr().out
    assert run("settings") == 0
    assert "AGGREGATOR_ALLOW_PRIVATE_NETWORKS" in capsys.readouterr().out


def test_invalid_setting_is_reported(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AGGREGATOR_FETCH_DEADLINE", "soon")
    assert run("settings") == 2
    assert "invalid settings" in capsys.readouterr().err


def blogger_archive(total: int, cap: int = 25) -> object:
    """A Blogger-like posts feed: pages by start-index/max-results (capped like Blogger's), rel=next."""

    def handler(exchange: Exchange) -> None:
        query = parse_qs(urlsplit(exchange.path).query)
        start = int(query.get("start-index", ["1"])[0])
        size = min(int(query.get("max-results", ["25"])[0]), cap)
        numbers = range(start, min(start + size, total + 1))
        base = exchange.server.url("/feeds/posts/default")
        entries = "".join(
            f"<entry><id>{BLOG}.post-{n}</id><published>2020-01-{1 + n % 28:02d}T10:00:00Z</published>"
            f"<title>Post {n}</title><content type='html'>Body {n}</content>"
            f"<link rel='alternate' href='https://blog.example/{n}.html'/></entry>"
            for n in numbers)
        nxt = (f"<link rel='next' href='{base}?start-index={start + size}&amp;max-results={size}'/>"
               if start + size <= total else "")
        body = (f"<?xml version='1.0'?><feed xmlns='http://www.w3.org/2005/Atom' "
                f"xmlns:openSearch='http://a9.com/-/spec/opensearchrss/1.0/'><id>{BLOG}</id><title>Blog</title>"
                f"<openSearch:totalResults>{total}</openSearch:totalResults>{nxt}{entries}</feed>")
        exchange.send(200, body.encode(), {"Content-Type": "application/atom+xml"})

    return handler


def test_backfill_pages_through_the_whole_archive(env: None, feed_server: FeedServer, db: Database,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    feed_server.route("/feeds/posts/default", blogger_archive(230))  # type: ignore[arg-type]
    url = feed_server.url("/feeds/posts/default")
    assert run("backfill", url, "--quiet") == 0
    assert "230 entries, 230 new" in capsys.readouterr().out
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) FROM posts").fetchone() == (230,)
    pages = [r.path for r in feed_server.requests if r.path.startswith("/feeds/posts/default")]
    # 25 per page (the server caps max-results), following rel="next"; then one empty page ends it
    assert len(pages) == 11 and "start-index=1&max-results=100" in pages[0]
    assert run("backfill", url, "--quiet") == 0
    assert "0 new" in capsys.readouterr().out
