"""The edge to feedparser: bytes -> ParsedFeed -> FeedContent; feedparser's bozo flags become ParseError here.

feedparser runs with `sanitize_html=False, resolve_relative_uris=False`: those two passes are its slowest part
and nh3 does both (faster and stricter) in aggregator.textclean. feedparser 6 does not read JSON Feed, so a
small adapter (aggregator.ingest.jsonfeed) gives JSON Feed items feedparser's entry shape: the rest sees one shape.

XML safety: feedparser's strict path is expat (2.4+ refuses "billion laughs" entity amplification) with
external entities off; its loose fallback only keeps DOCTYPE entities whose values contain no references.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime
from typing import Any

import feedparser

from aggregator.errors import ErrorKind, ParseError
from aggregator.ingest import language as languages
from aggregator.ingest.jsonfeed import read_json_feed
from aggregator.ingest.models import FeedContent, ParsedFeed
from aggregator.ingest.normalize import collapse_duplicates, entry_to_post, feed_meta, language
from aggregator.ingest.repair import repair_entry, repair_text

FEEDPARSER_OPTIONS: dict[str, bool] = {"sanitize_html": False, "resolve_relative_uris": False}
# With no Content-Type feedparser flags every body (NonXMLContentType); XML rules are the right default.
DEFAULT_CONTENT_TYPE = "application/xml"
_HTML_START = re.compile(rb"^(?:\xef\xbb\xbf)?\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html[\s>])", re.I | re.S)
_JSON_START = re.compile(rb"^(?:\xef\xbb\xbf)?\s*\{")
# Amplification by a defused body is bounded by this over the 3 bytes of a reference like "&a;".
MAX_ENTITY_VALUE_BYTES = 32
_FIRST_ELEMENT = re.compile(rb"<[A-Za-z]")
_ENTITY_DECLARATION = re.compile(rb"<!ENTITY\s[^\"'>]*(\"[^\"]*\"|'[^']*')[^>]*>")
_ROOT_END = re.compile(rb"</(?:[\w.-]+:)?(?:feed|rss|RDF)\s*>", re.I)
_ENTRY_END = re.compile(rb"</(?:[\w.-]+:)?(?:entry|item)\s*>", re.I)


def parse_and_normalize(body: bytes, *, url: str, content_type: str | None = None, now: datetime) -> FeedContent:
    """Parse one fetched body and normalize its entries; raises ParseError when it is not a usable feed."""
    parsed = read_feed(body, url=url, content_type=content_type)
    feed_lang = language(parsed.feed.get("language"), (parsed.feed.get("title_detail") or {}).get("language"))
    feed_author = parsed.feed.get("author_detail")
    posts, repaired = [], 0
    for raw in parsed.entries:
        entry, fixed = repair_entry(raw)
        repaired += fixed
        post = entry_to_post(entry, feed_url=url, now=now, feed_lang=feed_lang, feed_author=feed_author)
        if post is not None:
            posts.append(replace(post, lang=languages.detect(post.title, post.text, post.lang)))
    if parsed.ill_formed and not posts:
        raise ParseError(url, f"ill-formed XML with no usable entry; {parsed.warnings[0]}", kind=ErrorKind.MALFORMED)
    warnings = list(parsed.warnings)
    if repaired:
        warnings.append(f"repaired doubly-encoded UTF-8 (mojibake) in {repaired} entries")
    if skipped := len(parsed.entries) - len(posts):
        warnings.append(f"skipped {skipped} entries with no title, no content and no link")
    unique, collapsed = collapse_duplicates(posts)
    if collapsed:
        warnings.append(f"collapsed {collapsed} entries that repeat another entry's id")
    meta = feed_meta(parsed.feed, url)
    return FeedContent(
        meta=replace(meta, title=repair_text(meta.title)) if meta.title else meta,
        posts=tuple(unique),
        entries_found=len(parsed.entries),
        warnings=tuple(warnings),
        complete=not parsed.cut_short,
    )


def read_feed(body: bytes, *, url: str, content_type: str | None = None) -> ParsedFeed:
    """Entries of an RSS, Atom, RDF or JSON feed; ParseError (kind not_a_feed / malformed) when there are none
    and the body is not a well-formed empty feed."""
    if not body.strip():
        raise ParseError(url, "empty body", kind=ErrorKind.NOT_A_FEED)
    if _JSON_START.match(body):
        return read_json_feed(body, url=url)
    result = feedparser.parse(
        defuse_entities(body),
        # No content-location: feedparser would then re-resolve its base URI at every element (a
        # sixth of its time); the normalizer resolves links against the feed URL itself, and
        # xml:base in the feed is still honoured.
        response_headers={"content-type": content_type or DEFAULT_CONTENT_TYPE},
        **FEEDPARSER_OPTIONS,
    )
    problem = result.get("bozo_exception") if result.get("bozo") else None
    entries = tuple(result.get("entries") or ())
    if not entries and _looks_like_html(body, content_type, result.get("version")):
        raise ParseError(url, "an HTML page, not a feed", kind=ErrorKind.NOT_A_FEED)
    if not entries and problem is not None and not _is_benign(problem):
        raise ParseError(url, f"no entries in ill-formed XML: {_describe(problem)}", kind=ErrorKind.MALFORMED)
    if not entries and not result.get("version"):
        raise ParseError(url, "no RSS, Atom or RDF feed in the body", kind=ErrorKind.NOT_A_FEED)
    warnings = (_warning(problem, len(entries)),) if problem is not None else ()
    ill_formed = problem is not None and not _is_benign(problem)
    dropped = 0
    if ill_formed and entries:
        entries, dropped = finished_entries(body, entries)
        if dropped:
            warnings += (f"the body was cut short: dropped {dropped} unfinished entries",)
        if not entries:
            raise ParseError(url, "the body was cut short before its first entry ended", kind=ErrorKind.MALFORMED)
    return ParsedFeed(result.get("feed") or {}, entries, result.get("version") or "", warnings, ill_formed,
                      cut_short=dropped > 0)


def defuse_entities(body: bytes) -> bytes:
    """Drop DOCTYPE entity declarations with long values before feedparser sees them.

    expat stops entity amplification, but feedparser then re-parses the body with its loose parser, which
    expands every reference to a "safe" (reference-free) entity without limit: one 100 kB entity used
    20,000 times is a 2 GB string. Short values (the `<!ENTITY nbsp "&#160;">` kind feeds declare) stay.
    """
    root = _FIRST_ELEMENT.search(body)  # the same prolog boundary feedparser's replace_doctype() uses
    prolog = body[: root.start()] if root else body
    if b"<!ENTITY" not in prolog:
        return body
    defused = _ENTITY_DECLARATION.sub(_drop_long_entity, prolog)
    return defused + body[len(prolog) :]


def _drop_long_entity(match: re.Match[bytes]) -> bytes:
    return match.group(0) if len(match.group(1)) - 2 <= MAX_ENTITY_VALUE_BYTES else b""


def finished_entries(body: bytes, entries: tuple[dict[str, Any], ...]) -> tuple[tuple[dict[str, Any], ...], int]:
    """The entries of a truncated document that were complete before the cut, and how many were not.

    A body cut short (a dropped connection behind a proxy that still closed the response cleanly, a
    full disk on the publisher's side) still "parses": the loose parser hands back the last entry
    half-read, with its id or link cut in the middle, which would be stored as a new post under a
    wrong key. Entries come in document order, so only as many as there are closing tags were finished.
    Applies only when the root element never closes: a whole but sloppy feed keeps every entry.
    """
    if _ROOT_END.search(body[-512:]):
        return entries, 0
    finished = len(_ENTRY_END.findall(body))
    if finished >= len(entries):
        return entries, 0
    return entries[:finished], len(entries) - finished


def _looks_like_html(body: bytes, content_type: str | None, version: str | None) -> bool:
    if version:
        return False
    return bool(_HTML_START.match(body[:4096])) or "html" in (content_type or "").lower()


def _is_benign(problem: BaseException) -> bool:
    """feedparser's own name for flags that say nothing about the feed's contents (declared type/encoding)."""
    return isinstance(problem, feedparser.ThingsNobodyCaresAboutButMe)


def _describe(problem: BaseException) -> str:
    return f"{type(problem).__name__}: {problem}"[:300]


def _warning(problem: BaseException, entry_count: int) -> str:
    if _is_benign(problem):
        return f"feed declared itself inaccurately: {_describe(problem)}"
    return f"ill-formed feed, recovered {entry_count} entries: {_describe(problem)}"
