"""JSON Feed 1.0/1.1 (https://jsonfeed.org/version/1.1) read into feedparser's dict shape.

feedparser 6 does not read JSON Feed; giving its items feedparser's entry shape means normalize has
one input shape to handle.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aggregator.errors import ErrorKind, ParseError
from aggregator.ingest.models import ParsedFeed

JSON_FEED_VERSION = "https://jsonfeed.org/version/"


def read_json_feed(body: bytes, *, url: str) -> ParsedFeed:
    """A JSON Feed in feedparser's dict shape, so normalize.py has one input shape to handle."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ParseError(url, f"invalid JSON: {exc}"[:300], kind=ErrorKind.MALFORMED) from exc
    if not isinstance(document, dict) or not str(document.get("version", "")).startswith(JSON_FEED_VERSION):
        raise ParseError(url, "JSON, but not a JSON Feed (no jsonfeed.org version)", kind=ErrorKind.NOT_A_FEED)
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
