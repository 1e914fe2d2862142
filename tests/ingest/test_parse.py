"""parse_and_normalize on our own fixture pairs, on hostile bodies, and on the real feeds in ../shared.

A fixture pair is `tests/data/feeds/<case>.<ext>` + `<case>.expected.json`. The expected file holds the inputs
that are not the body (`url`, `now`, `content_type`, all optional) and either `result` (the FeedContent as JSON)
or `error` (the ParseError kind). To add a case, add the body and an expected file holding `{}`, run
`AGGREGATOR_UPDATE_EXPECTED=1 pytest tests/test_parse.py`, and read the written result before committing it.
"""

from __future__ import annotations

import dataclasses
import html
import json
import os
import pickle
import re
import resource
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import pytest

from aggregator.errors import ParseError
from aggregator.ingest.models import FeedContent
from aggregator.ingest.normalize import canonical_url
from aggregator.ingest.parse import parse_and_normalize, read_feed

FEEDS = Path(__file__).parents[1] / "data" / "feeds"
DEFAULT_URL = "https://example.com/feed.xml"
DEFAULT_NOW = "2024-06-01T00:00:00+00:00"
UPDATE = os.environ.get("AGGREGATOR_UPDATE_EXPECTED") == "1"
CASES = sorted(p for p in FEEDS.iterdir() if p.is_file() and not p.name.endswith(".expected.json"))


def expected_path(body: Path) -> Path:
    return body.with_name(body.name.rsplit(".", 1)[0] + ".expected.json")


def as_json(content: FeedContent) -> dict[str, Any]:
    def encode(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, list | tuple):
            return [encode(v) for v in value]
        if isinstance(value, dict):
            return {k: encode(v) for k, v in value.items()}
        return value

    # Fields the later tag stage fills in are not this stage's output.
    result = encode(dataclasses.asdict(content))
    result.pop("taxonomy_version", None)
    for post in result["posts"]:
        post.pop("tags", None)
        post.pop("story_features", None)
    return result


def run_case(body: Path, spec: dict[str, Any]) -> dict[str, Any]:
    try:
        content = parse_and_normalize(
            body.read_bytes(),
            url=spec.get("url", DEFAULT_URL),
            content_type=spec.get("content_type"),
            now=datetime.fromisoformat(spec.get("now", DEFAULT_NOW)),
        )
    except ParseError as exc:
        return {"error": exc.code}
    return {"result": as_json(content)}


@pytest.mark.parametrize("body", CASES, ids=[p.name for p in CASES])
def test_fixture_pair(body: Path) -> None:
    path = expected_path(body)
    spec = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    actual = run_case(body, spec)
    if UPDATE:
        inputs = {k: v for k, v in spec.items() if k in ("url", "now", "content_type")}
        spec = inputs | actual
        path.write_text(json.dumps(spec, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    assert path.exists(), f"{path.name} is missing: write one holding {{}} and run with AGGREGATOR_UPDATE_EXPECTED=1"
    assert actual == {k: v for k, v in spec.items() if k in ("result", "error")}


def parse_fixture(name: str, url: str = DEFAULT_URL) -> FeedContent:
    return parse_and_normalize((FEEDS / name).read_bytes(), url=url, now=datetime.fromisoformat(DEFAULT_NOW))


def test_blogger_atom_and_rss_forms_store_each_post_once() -> None:
    atom = parse_fixture("blogger_atom.xml", "https://steppenotes.blogspot.com/feeds/posts/default")
    rss = parse_fixture("blogger_rss.xml", "https://steppenotes.blogspot.com/feeds/posts/default?alt=rss")
    assert len(atom.posts) == len(rss.posts) == 3
    assert [p.dedup_key for p in atom.posts] == [p.dedup_key for p in rss.posts]
    assert all(p.dedup_key.startswith("tag:blogger.com,1999:blog-1234567890123456789.post-") for p in atom.posts)
    assert atom.posts == rss.posts  # every field, content_hash included


def test_result_survives_a_process_boundary() -> None:
    content = parse_fixture("rss_news.xml")
    assert pickle.loads(pickle.dumps(content)) == content


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"", "not_a_feed"),
        (b"   \n", "not_a_feed"),
        (b"<!doctype html><html><body><p>Hello</p></body></html>", "not_a_feed"),
        (b"<html><head><title>x</title></head></html>", "not_a_feed"),
        (b"<?xml version='1.0'?><note><to>you</to></note>", "not_a_feed"),
        (b"\x00\x01\x02 binary junk \xff\xfe", "malformed"),
        (b"<rss version='2.0'><channel><title>x</title>", "malformed"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": [', "malformed"),
        (b'{"hello": "world"}', "not_a_feed"),
        (b"[1, 2, 3]", "malformed"),
    ],
)
def test_bodies_that_are_not_feeds(body: bytes, kind: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_and_normalize(body, url=DEFAULT_URL, now=datetime.now(UTC))
    assert caught.value.code == kind
    assert caught.value.url == DEFAULT_URL


def test_html_content_type_with_a_real_feed_is_still_a_feed() -> None:
    body = (FEEDS / "empty_valid.xml").read_bytes()
    content = parse_and_normalize(body, url=DEFAULT_URL, content_type="text/html", now=datetime.now(UTC))
    assert content.posts == ()
    assert content.meta.ttl_minutes == 1440
    assert any("NonXMLContentType" in w for w in content.warnings)


def test_an_html_page_is_rejected_whatever_its_declared_type() -> None:
    body = (FEEDS / "html_page.html").read_bytes()
    for content_type in (None, "text/html; charset=utf-8", "application/rss+xml"):
        with pytest.raises(ParseError, match="HTML page"):
            parse_and_normalize(body, url=DEFAULT_URL, content_type=content_type, now=datetime.now(UTC))


@pytest.mark.parametrize("name", ["billion_laughs.xml", "short_laughs.xml", "quadratic_blowup.xml"])
def test_entity_bombs_stay_small_and_fast(name: str) -> None:
    started = time.perf_counter()
    content = parse_fixture(name)
    assert time.perf_counter() - started < 2
    assert all(len(p.text) + len(p.title) < 10_000 for p in content.posts)


def test_a_large_quadratic_blowup_is_defused() -> None:
    """Undefended, feedparser's loose parser builds a 200 MB title here (~5 s); expat alone stops at ~20 MB."""
    body = (
        b'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY a "' + b"x" * 100_000 + b'">\n]>\n'
        b'<rss version="2.0"><channel><item><title>' + b"&a;" * 2_000 + b"</title></item></channel></rss>"
    )
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    content = parse_and_normalize(body, url=DEFAULT_URL, now=datetime.now(UTC))
    assert time.perf_counter() - started < 2
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024  # KiB on Linux
    assert len(content.posts[0].title) < 100_000


def test_deeply_nested_html_does_not_take_quadratic_time() -> None:
    """html5ever scans its element stack on every block start tag: 100,000 open <div>s take ~20 s in nh3."""
    deep = "&lt;div&gt;x" * 100_000
    body = f"<rss version='2.0'><channel><item><title>t</title><description>{deep}</description></item></channel></rss>"
    started = time.perf_counter()
    content = parse_and_normalize(body.encode(), url=DEFAULT_URL, now=datetime.now(UTC))
    assert time.perf_counter() - started < 5
    assert content.posts[0].text.startswith("x x x")
    assert "<div" not in content.posts[0].html


def test_many_entries_parse_in_linear_time() -> None:
    items = "".join(f"<item><title>t{i}</title><link>http://e.example/{i}</link></item>" for i in range(5000))
    body = f"<rss version='2.0'><channel><title>big</title>{items}</channel></rss>".encode()
    started = time.perf_counter()
    content = parse_and_normalize(body, url=DEFAULT_URL, now=datetime.now(UTC))
    assert time.perf_counter() - started < 10
    assert len(content.posts) == content.entries_found == 5000


def test_read_feed_uses_feedparser_fast_options_and_keeps_its_entries() -> None:
    parsed = read_feed((FEEDS / "rss_news.xml").read_bytes(), url=DEFAULT_URL)
    assert parsed.version == "rss20"
    first = parsed.entries[0]["content"][0]["value"]
    assert "<script>" in first  # feedparser did not sanitize: nh3 does, in normalize
    assert 'href="../maps/border.html"' in first  # nor resolve: nh3 does, against the entry link


# --- the real feeds in ../shared/data/feeds ------------------------------------------------------------


def plain(title: str) -> str:
    """feedparser's title modulo our canonical form: markup dropped, entities decoded, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]*>", "", title)).split())


def real_feeds(shared: Path) -> list[Path]:
    folder = shared / "feeds"
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix != ".md")


def test_real_feeds_match_what_feedparser_finds(shared_data: Path) -> None:
    feeds = real_feeds(shared_data)
    assert len(feeds) >= 20, "expected the blogger/ and news/ feed folders"
    now = datetime.now(UTC)
    for path in feeds:
        body = path.read_bytes()
        reference = feedparser.parse(body, response_headers={"content-location": DEFAULT_URL})
        content = parse_and_normalize(body, url=DEFAULT_URL, now=now)
        collapsed = sum(int(w.split()[1]) for w in content.warnings if w.startswith("collapsed"))
        assert content.entries_found == len(reference.entries), path.name
        assert len(content.posts) + collapsed == len(reference.entries), path.name
        by_key = {p.url: p for p in content.posts}
        for entry in reference.entries:
            url = canonical_url(entry.get("link"), DEFAULT_URL)
            assert url in by_key, f"{path.name}: {entry.get('link')}"
        reference_titles: dict[str | None, set[str]] = {}
        for entry in reference.entries:
            url = canonical_url(entry.get("link"), DEFAULT_URL)
            reference_titles.setdefault(url, set()).add(plain(entry.get("title", "")))
        for post in content.posts:
            titles = reference_titles[post.url] - {""}
            assert not titles or post.title in titles, f"{path.name}: {post.title!r} not in {titles}"
        for post in content.posts:
            for moment in (post.published_at, post.updated_at):
                assert moment is None or moment.tzinfo is UTC, f"{path.name}: {moment!r}"
            assert "<script" not in post.html.lower()


def test_real_blogger_feeds_keep_blogger_identities(shared_data: Path) -> None:
    for path in sorted((shared_data / "feeds" / "blogger").glob("*.*")):
        if path.suffix == ".md":
            continue
        content = parse_and_normalize(path.read_bytes(), url=DEFAULT_URL, now=datetime.now(UTC))
        assert content.meta.total_results is not None, path.name
        for post in content.posts:
            assert post.dedup_key.startswith("tag:blogger.com,1999:blog-"), (path.name, post.dedup_key)
            assert ".post-" in post.dedup_key
            assert not any(c.startswith("http://schemas.google.com/") for c in post.categories)


@pytest.mark.parametrize("name", ["blogger_atom.xml", "blogger_rss.xml", "rss_news.xml", "rdf10.xml", "atom03.xml"])
def test_a_body_cut_anywhere_yields_only_entries_that_were_whole(name: str) -> None:
    """A truncated body must never produce a post the whole feed doesn't have (an id or link cut in
    the middle would be stored as a new post): every cut point of the feed, in steps."""
    body = (FEEDS / name).read_bytes()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    whole = {p.dedup_key: p for p in parse_and_normalize(body, url="https://example.org/feed", now=now).posts}
    step = max(1, len(body) // 150)
    recovered = 0
    for cut in range(100, len(body) - 1, step):
        try:
            content = parse_and_normalize(body[:cut], url="https://example.org/feed", now=now)
        except ParseError:
            continue
        for post in content.posts:
            full = whole.get(post.dedup_key)
            assert full is not None, f"cut at {cut}: {post.dedup_key!r} is not an entry of the whole feed"
            assert (post.url, post.title) == (full.url, full.title), f"cut at {cut}"
            recovered += 1
    assert recovered > 0, "some cut points should still yield the entries before the cut"


def test_a_whole_but_sloppy_feed_keeps_entries_it_never_closed() -> None:
    """Only a document whose root never closes counts as cut short."""
    body = (b"<?xml version='1.0'?><rss version='2.0'><channel><title>Sloppy & co</title>"
            b"<item><title>One</title><link>https://sloppy.example.org/1</link>"
            b"<item><title>Two</title><link>https://sloppy.example.org/2</link>"
            b"</channel></rss>")
    content = parse_and_normalize(body, url="https://sloppy.example.org/feed", now=datetime(2026, 1, 1, tzinfo=UTC))
    assert {p.url for p in content.posts} == {"https://sloppy.example.org/1", "https://sloppy.example.org/2"}
