"""The `aggregator` command end to end: real database, real local feed server, real output."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC
from html import escape
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from aggregator.cli import main
from aggregator.config import Settings
from aggregator.db import Database
from aggregator.db import sources as sources_db
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
    assert f"imported 2 feed(s) from {opml}: 0 already present, 0 rejected" in capsys.readouterr().out
    assert run("feeds", "import-opml", str(opml)) == 0
    assert "imported 0 feed(s)" in (out := capsys.readouterr().out) and "2 already present" in out
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


def opml_file(path: Path, urls: list[str]) -> Path:
    """One outline per line, so a rejection's line number is the outline's position plus 2."""
    outlines = "\n".join(f'<outline text="feed {n}" xmlUrl="{escape(url, quote=True)}"/>' for n, url in enumerate(urls))
    path.write_text(f'<?xml version="1.0"?>\n<opml version="2.0"><body>\n{outlines}\n</body></opml>\n')
    return path


def stored(db: Database) -> dict[str, bool]:
    with db.connection() as conn:
        return dict(conn.execute("SELECT url, enabled FROM sources").fetchall())


def test_opml_import_keeps_the_good_outlines_and_reports_each_rejected_one(
        env: None, db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("feeds", "add", "https://known.example/rss") == 0
    assert run("feeds", "remove", "https://known.example/rss") == 0
    capsys.readouterr()
    path = opml_file(tmp_path / "mixed.opml", [
        "https://a.example/feed",               # line 3
        "file:///etc/passwd",                   # line 4
        "http://exa mple.org/",                 # line 5
        "http://user:hunter2@b.example/x",      # line 6
        "http://127.0.0.1:99999/",              # line 7
        "https://a.example/feed",               # line 8: named twice
        "https://known.example/rss",            # line 9: known (and disabled): left as it is
        "https://c.example/atom",               # line 10
    ])
    assert run("feeds", "import-opml", str(path)) == 1
    captured = capsys.readouterr()
    assert [line for line in captured.err.splitlines() if " INFO " not in line] == [
        "rejected line 4: url: not an http(s) URL: 'file:///etc/passwd'",
        "rejected line 5: url: contains whitespace or a control character (write a space as %20): "
        "'http://exa mple.org/'",
        "rejected line 6: url: a user name or password in a feed URL is refused (the source list is public); "
        "use a URL without credentials: 'http://***@b.example/x'",
        "rejected line 7: url: invalid URL (Port out of range 0-65535): 'http://127.0.0.1:99999/'",
    ]
    assert captured.out.strip() == f"imported 2 feed(s) from {path}: 2 already present, 4 rejected"
    assert "hunter2" not in captured.out + captured.err
    assert stored(db) == {"https://a.example/feed": True, "https://c.example/atom": True,
                          "https://known.example/rss": False}


def test_opml_import_over_the_outline_cap_is_refused_whole(env: None, db: Database, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AGGREGATOR_OPML_MAX_OUTLINES", "3")
    path = opml_file(tmp_path / "four.opml", [f"https://{n}.example/feed" for n in range(4)])
    assert run("feeds", "import-opml", str(path)) == 1
    assert "more than 3 outlines" in capsys.readouterr().err
    assert stored(db) == {}
    monkeypatch.setenv("AGGREGATOR_OPML_MAX_OUTLINES", "4")
    assert run("feeds", "import-opml", str(path)) == 0
    assert len(stored(db)) == 4


def test_opml_nested_100000_levels_deep_imports_its_feed(env: None, db: Database, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AGGREGATOR_OPML_MAX_OUTLINES", "200000")
    depth = 100_000
    path = tmp_path / "deep.opml"
    path.write_text('<opml version="2.0"><body>' + '<outline text="folder">' * depth
                    + '<outline text="inner" xmlUrl="https://deep.example/feed"/>' + "</outline>" * depth
                    + "</body></opml>")
    assert run("feeds", "import-opml", str(path)) == 0
    assert "imported 1 feed(s)" in capsys.readouterr().out
    assert stored(db) == {"https://deep.example/feed": True}


def test_opml_import_of_10000_outlines_takes_under_10_seconds(env: None, db: Database, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = opml_file(tmp_path / "big.opml", [f"https://site{n}.example.org/feed.xml" for n in range(10_000)])
    started = time.perf_counter()
    assert run("feeds", "import-opml", str(path)) == 0
    took = time.perf_counter() - started
    assert "imported 10000 feed(s)" in capsys.readouterr().out
    assert len(stored(db)) == 10_000
    assert took < 10, f"importing 10,000 outlines took {took:.1f} s"


def test_opml_import_of_a_missing_file_is_one_line(env: None, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert run("feeds", "import-opml", str(tmp_path / "missing.opml")) == 1
    assert capsys.readouterr().err == f"aggregator: cannot read OPML file {tmp_path / 'missing.opml'}: " \
                                      "No such file or directory\n"


@pytest.mark.parametrize(("args", "says"), [
    (["http://exa mple.org/"], "whitespace"),
    (["http://127.0.0.1:99999/"], "Port out of range"),
    (["http://user:pass@example.org/x"], "user name or password"),
    (["https://example.org/f", "--country", "XX"], "countries: unknown code 'XX'"),
    (["https://example.org/f", "--topic", "gardening"], "topics: unknown code 'gardening'"),
])
def test_feeds_add_refuses_what_the_api_refuses(env: None, db: Database, args: list[str], says: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert run("feeds", "add", *args) == 1
    err = capsys.readouterr().err
    assert says in err and "pass@" not in err
    assert stored(db) == {}


def test_feeds_add_checks_codes_and_a_re_add_keeps_them(env: None, db: Database,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert run("feeds", "add", "https://example.org/f", "--country", "kz", "--topic", "Terrorism") == 0
    assert run("feeds", "add", "https://example.org/f", "--name", "Renamed") == 0
    with db.connection() as conn:
        row = conn.execute("SELECT name, default_countries, default_topics FROM sources").fetchone()
    assert row == ("Renamed", ["KZ"], ["terrorism"])
    assert run("feeds", "remove", "1") == 0  # by the id `feeds list` shows
    assert "disabled feed 1: https://example.org/f" in capsys.readouterr().out


def take_lease(db: Database, url: str, owner: str, seconds: int) -> None:
    """Another worker claims the feed, the way every worker does."""
    with db.connection() as conn:
        assert [s.url for s in sources_db.claim_due(conn, owner=owner, limit=1, lease_seconds=seconds,
                                                    urls=[url])] == [url]


def test_poll_of_a_leased_feed_names_the_worker_and_the_lease_end(
        env: None, db: Database, feed_server: FeedServer, capsys: pytest.CaptureFixture[str]) -> None:
    feed_server.serve("/feed", RSS_SAMPLE)
    url = feed_server.url("/feed")
    assert run("feeds", "add", url) == 0
    take_lease(db, url, "other-host:4242:abc123", 600)
    with db.connection() as conn:
        [until] = conn.execute("SELECT lease_until FROM sources").fetchone()
    capsys.readouterr()
    assert run("poll", "--feed", url) == 1
    out = capsys.readouterr().out
    assert (f"skipped {url}: leased by worker other-host:4242:abc123 until "
            f"{until.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC") in out
    assert "--wait polls it when the lease ends" in out
    assert "polled 0 feed(s): 0 new post(s), 0 failed, 1 skipped" in out
    started = time.monotonic()
    assert run("poll", "--feed", url, "--wait", "0.5") == 1  # a bound shorter than the lease
    assert 0.5 <= time.monotonic() - started < 30
    assert "1 skipped" in capsys.readouterr().out
    assert len(feed_server.requests) == 0


def test_poll_wait_polls_the_feed_once_its_lease_ends(env: None, db: Database, feed_server: FeedServer,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    feed_server.serve("/feed", RSS_SAMPLE)
    url = feed_server.url("/feed")
    assert run("feeds", "add", url) == 0
    take_lease(db, url, "other-host:4242:abc123", 2)
    with db.connection() as conn:
        [until] = conn.execute("SELECT lease_until FROM sources").fetchone()
    assert run("poll", "--feed", url, "--wait") == 0
    assert "polled 1 feed(s): 1 new post(s), 0 failed" in capsys.readouterr().out
    assert len(feed_server.requests) == 1
    with db.connection() as conn:
        [polled] = conn.execute("SELECT last_polled_at FROM sources").fetchone()
    assert polled >= until


def test_poll_of_a_disabled_feed_says_so(env: None, feed_server: FeedServer,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    url = feed_server.url("/feed")
    assert run("feeds", "add", url) == 0
    assert run("feeds", "remove", url) == 0
    capsys.readouterr()
    assert run("poll", "--feed", url) == 1
    assert f"skipped {url}: disabled (removed by a user); `feeds add` re-enables it" in capsys.readouterr().out
