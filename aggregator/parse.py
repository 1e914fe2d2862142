"""The edge to feedparser: bytes -> ParsedFeed -> FeedContent; feedparser's bozo flags become ParseError here.

feedparser runs with `sanitize_html=False, resolve_relative_uris=False`: those two passes are its slowest part
and nh3 does both (faster and stricter) in aggregator.textclean. feedparser 6 does not read JSON Feed, so a
small adapter below gives JSON Feed items feedparser's entry shape and the rest of the code sees one shape.

XML safety: feedparser's strict path is expat (2.4+ refuses "billion laughs" entity amplification) with
external entities off; its loose fallback only keeps DOCTYPE entities whose values contain no references.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import feedparser

from aggregator.errors import ParseError
from aggregator.models import FeedContent
from aggregator.normalize import collapse_duplicates, entry_to_post, feed_meta, language

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
_JSON_FEED_VERSION = "https://jsonfeed.org/version/"


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """What feedparser (or the JSON Feed adapter) read: feed-level and entry dicts, plus what it complained of."""

    feed: Mapping[str, Any]
    entries: tuple[dict[str, Any], ...]
    version: str
    warnings: tuple[str, ...] = ()
    ill_formed: bool = False  # the XML was broken; feedparser's loose parser recovered what it could
    cut_short: bool = False  # the body ended inside an entry, which was dropped (finished_entries)


def parse_and_normalize(body: bytes, *, url: str, content_type: str | None = None, now: datetime) -> FeedContent:
    """Parse one fetched body and normalize its entries; raises ParseError when it is not a usable feed."""
    parsed = read_feed(body, url=url, content_type=content_type)
    feed_lang = language(parsed.feed.get("language"), (parsed.feed.get("title_detail") or {}).get("language"))
    feed_author = parsed.feed.get("author_detail")
    posts = []
    for entry in parsed.entries:
        post = entry_to_post(entry, feed_url=url, now=now, feed_lang=feed_lang, feed_author=feed_author)
        if post is not None:
            posts.append(post)
    if parsed.ill_formed and not posts:
        raise ParseError(url, f"ill-formed XML with no usable entry; {parsed.warnings[0]}", kind="malformed")
    warnings = list(parsed.warnings)
    if skipped := len(parsed.entries) - len(posts):
        warnings.append(f"skipped {skipped} entries with no title, no content and no link")
    unique, collapsed = collapse_duplicates(posts)
    if collapsed:
        warnings.append(f"collapsed {collapsed} entries that repeat another entry's id")
    return FeedContent(
        meta=feed_meta(parsed.feed, url),
        posts=tuple(unique),
        entries_found=len(parsed.entries),
        warnings=tuple(warnings),
        complete=not parsed.cut_short,
    )


def read_feed(body: bytes, *, url: str, content_type: str | None = None) -> ParsedFeed:
    """Entries of an RSS, Atom, RDF or JSON feed; ParseError (kind not_a_feed / malformed) when there are none
    and the body is not a well-formed empty feed."""
    if not body.strip():
        raise ParseError(url, "empty body", kind="not_a_feed")
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
        raise ParseError(url, "an HTML page, not a feed", kind="not_a_feed")
    if not entries and problem is not None and not _is_benign(problem):
        raise ParseError(url, f"no entries in ill-formed XML: {_describe(problem)}", kind="malformed")
    if not entries and not result.get("version"):
        raise ParseError(url, "no RSS, Atom or RDF feed in the body", kind="not_a_feed")
    warnings = (_warning(problem, len(entries)),) if problem is not None else ()
    ill_formed = problem is not None and not _is_benign(problem)
    dropped = 0
    if ill_formed and entries:
        entries, dropped = finished_entries(body, entries)
        if dropped:
            warnings += (f"the body was cut short: dropped {dropped} unfinished entries",)
        if not entries:
            raise ParseError(url, "the body was cut short before its first entry ended", kind="malformed")
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


# --- JSON Feed (https://jsonfeed.org/version/1.1) -------------------------------------------------------


def read_json_feed(body: bytes, *, url: str) -> ParsedFeed:
    """A JSON Feed in feedparser's dict shape, so normalize.py has one input shape to handle."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ParseError(url, f"invalid JSON: {exc}"[:300], kind="malformed") from exc
    if not isinstance(document, dict) or not str(document.get("version", "")).startswith(_JSON_FEED_VERSION):
        raise ParseError(url, "JSON, but not a JSON Feed (no jsonfeed.org version)", kind="not_a_feed")
    items = document.get("items")
    items = [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []
    feed = {
        "title": _text(document.get("title")),
        "link": _text(document.get("home_page_url")),
        "language": _text(document.get("language")),
        "author_detail": _json_author(document),
        "links": [{"rel": "next", "href": _text(document.get("next_url"))}] if document.get("next_url") else [],
    }
    entries = tuple(_json_entry(item, _text(document.get("language"))) for item in items)
    return ParsedFeed(feed, entries, "json" + document["version"].rsplit("/", 1)[-1].replace(".", ""))


def _json_entry(item: Mapping[str, Any], feed_language: str | None) -> dict[str, Any]:
    lang = _text(item.get("language")) or feed_language
    content = []
    if _text(item.get("content_html")):
        content.append({"type": "text/html", "value": _text(item.get("content_html")), "language": lang})
    if _text(item.get("content_text")):
        content.append({"type": "text/plain", "value": _text(item.get("content_text")), "language": lang})
    summary = _text(item.get("summary"))
    return {
        "id": _text(item.get("id")) if item.get("id") is not None else None,
        "link": _text(item.get("url")) or _text(item.get("external_url")),
        "title_detail": {"type": "text/plain", "value": _text(item.get("title")), "language": lang},
        "content": content,
        "summary_detail": {"type": "text/plain", "value": summary} if summary else None,
        "published_parsed": _json_date(item.get("date_published")),
        "updated_parsed": _json_date(item.get("date_modified")),
        "author_detail": _json_author(item),
        "tags": [{"term": _text(tag)} for tag in item.get("tags") or () if isinstance(tag, str | int | float)],
    }


def _json_author(holder: Mapping[str, Any]) -> dict[str, Any] | None:
    authors = holder.get("authors") if isinstance(holder.get("authors"), list) else [holder.get("author")]
    first = next((a for a in authors if isinstance(a, dict)), None)
    return {"name": _text(first.get("name"))} if first else None


def _json_date(value: object) -> datetime | None:
    """RFC 3339 as JSON Feed requires; anything else is dropped rather than guessed."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _text(value: object) -> str:
    """JSON values where a string belongs: numbers are fine (ids), objects and lists are not."""
    return str(value) if isinstance(value, str | int | float) and not isinstance(value, bool) else ""
