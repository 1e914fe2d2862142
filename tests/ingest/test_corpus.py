"""Every file of feedparser's own test corpus (~2,100 bodies, many hostile) through parse_and_normalize.

Each must give a FeedContent or a ParseError, never another exception, and no display HTML may keep anything
that runs script. The corpus is other people's data in ../shared; the test skips without it.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from aggregator.errors import ParseError
from aggregator.ingest.models import FeedContent
from aggregator.ingest.parse import parse_and_normalize

URL = "http://example.com/feed.xml"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
NOT_FEEDS = {"LICENSE", "SOURCES.md"}
UNSAFE_TEXT = re.compile(r"<script|javascript:|vbscript:", re.IGNORECASE)
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "background", "cite", "poster", "srcset", "longdesc"}
SAFE_SCHEMES = re.compile(r"^(?:https?:|mailto:)", re.IGNORECASE)


class UnsafeMarkup(HTMLParser):
    """Collects what a browser would act on: script-ish tags, on* handlers, URLs with other schemes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"script", "style", "iframe", "object", "embed", "form", "frame", "applet", "base", "meta"}:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on") or name == "style":
                self.found.append(f"{tag} {name}=")
            elif name in URL_ATTRIBUTES and value and not SAFE_SCHEMES.match(value.strip()):
                self.found.append(f"{tag} {name}={value[:40]}")


def unsafe_parts(html: str) -> list[str]:
    checker = UnsafeMarkup()
    checker.feed(html)
    checker.close()
    return checker.found + UNSAFE_TEXT.findall(html)


@pytest.fixture(scope="module")
def corpus(shared_data: Path) -> list[Path]:
    root = shared_data / "feedparser-corpus"
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name not in NOT_FEEDS)
    assert len(files) > 2000, "the corpus should hold about 2,100 files"
    return files


def test_every_corpus_file_gives_posts_or_a_parse_error(corpus: list[Path]) -> None:
    outcomes: Counter[str] = Counter()
    unsafe: list[tuple[str, list[str]]] = []
    for path in corpus:
        try:
            content = parse_and_normalize(path.read_bytes(), url=URL, now=NOW)
        except ParseError as exc:
            outcomes[f"ParseError:{exc.code}"] += 1
            continue
        assert isinstance(content, FeedContent)
        outcomes["posts"] += len(content.posts)
        outcomes["feeds"] += 1
        for post in content.posts:
            if found := unsafe_parts(post.html):
                unsafe.append((str(path.relative_to(path.parents[2])), found))
            assert post.published_at is None or post.published_at.tzinfo is UTC
            assert post.published_at is None or post.published_at <= NOW
    assert not unsafe, unsafe[:10]
    assert outcomes["feeds"] > 1500 and outcomes["posts"] > 500, outcomes


@pytest.mark.parametrize(
    "html",
    [
        "<script>x()</script>",
        '<img src="x.png" onerror="x()">',
        '<a href="javascript:x()">a</a>',
        '<a href=" JAVASCRIPT:x()">a</a>',
        '<a href="data:text/html,<b>">a</a>',
        '<iframe src="https://e.example/"></iframe>',
        '<p style="background:url(x)">p</p>',
    ],
)
def test_the_unsafe_markup_check_can_fail(html: str) -> None:
    assert unsafe_parts(html)


def test_the_unsafe_markup_check_passes_plain_safe_html() -> None:
    assert (
        unsafe_parts('<p><a href="https://e.example/" rel="nofollow">a</a><img src="http://e.example/i.png"></p>') == []
    )
