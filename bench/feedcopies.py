"""Copies of real feed files in which every entry becomes a distinct post.

The ingest benchmark serves each file under several URLs. Served verbatim, the copies would be the
same posts (the same Blogger `tag:` ids, the same links) and the store would rightly keep one of
each. So each copy gets a marker in every entry id and link:

    http(s) URLs     a path segment after the host:  https://h/a/b  ->  https://h/copy3/a/b
    anything else    a suffix:                        tag:blogger.com,1999:blog-1.post-2  ->  ...post-2-copy3

The rewrite touches the text of <id>, <guid>, <link> and <feedburner:origLink> elements (with or
without a namespace prefix, CDATA or not) and the href of <link .../> elements. The marker is plain
ASCII letters and digits, so nothing needs escaping and the XML stays as well- or ill-formed as it
was. Everything else of the file, content included, is left byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

FEED_SUFFIXES = frozenset({".xml", ".rss", ".atom", ".rdf", ".json"})

# <tag attrs>value</tag> or <tag attrs><![CDATA[value]]></tag>; never a self-closing <link .../>.
_ELEMENT_TEXT = re.compile(
    rb"<((?:[\w.-]+:)?(?:id|guid|link|origLink))(\s(?:[^>]*[^/>])?)?>"
    rb"(\s*)(?:<!\[CDATA\[(.*?)\]\]>|([^<]*))(\s*)</\1\s*>",
    re.S | re.I,
)
_LINK_HREF = re.compile(rb"(<(?:[\w.-]+:)?link\b[^>]*?\bhref\s*=\s*)([\"'])(.*?)\2", re.S | re.I)
_URL = re.compile(rb"^(https?://[^/?#\s]+)(.*)$", re.S | re.I)


@dataclass(frozen=True, slots=True)
class FeedFile:
    """One file of the data folder: where it lives and the path it is served under."""

    path: Path
    name: str  # relative to the data folder, with forward slashes: "blogger/feedjira_cnn.xml"


def feed_files(folder: Path) -> list[FeedFile]:
    """The feed files under `folder` (not its notes such as SOURCES.md), in a stable order."""
    files = [p for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix.lower() in FEED_SUFFIXES]
    return [FeedFile(p, p.relative_to(folder).as_posix()) for p in files]


def mark_value(value: bytes, copy: int) -> bytes:
    """`value` (an id or a link) made unique to copy number `copy`."""
    if not value.strip():
        return value
    url = _URL.match(value)
    if url:
        host, rest = url.groups()
        return host + b"/copy%d" % copy + (rest if rest.startswith(b"/") else b"/" + rest if rest else b"")
    return value + b"-copy%d" % copy


def make_copy(body: bytes, copy: int) -> bytes:
    """The feed body with every entry id and link carrying the marker of copy number `copy`."""

    def element(match: re.Match[bytes]) -> bytes:
        tag, attrs, lead, cdata, plain, trail = match.groups()
        inner = b"<![CDATA[" + mark_value(cdata, copy) + b"]]>" if cdata is not None else mark_value(plain, copy)
        return b"<" + tag + (attrs or b"") + b">" + lead + inner + trail + b"</" + tag + b">"

    def href(match: re.Match[bytes]) -> bytes:
        start, quote, value = match.groups()
        return start + quote + mark_value(value, copy) + quote

    return _LINK_HREF.sub(href, _ELEMENT_TEXT.sub(element, body))


def content_type_for(body: bytes) -> str:
    """What a typical server would send: the feed's own media type, charset left to the XML declaration."""
    head = body[:2048].lstrip()
    if head.startswith(b"{"):
        return "application/feed+json"
    if re.search(rb"<feed[\s>]", head):
        return "application/atom+xml"
    if re.search(rb"<rdf:RDF[\s>]", head):
        return "application/rdf+xml"
    return "application/rss+xml"


def served_path(copy: int, name: str) -> str:
    """The URL path of copy `copy` of file `name`: /c3/blogger/feed.xml."""
    return f"/c{copy}/{name}"


def all_copies(files: list[FeedFile], copies: int) -> Iterator[tuple[str, bytes]]:
    """(URL path, body) of every copy of every file."""
    for file in files:
        body = file.path.read_bytes()
        for copy in range(copies):
            yield served_path(copy, file.name), make_copy(body, copy)
