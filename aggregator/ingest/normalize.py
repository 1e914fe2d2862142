"""Pure normalization: a parsed feed entry (feedparser's dict shape) -> Post. No I/O.

Everything here takes data and returns data, so it is tested table-driven. The entry mapping is what feedparser
produces (or parse.py's JSON Feed adapter imitates): `id`, `link`, `title_detail`, `content`, `summary_detail`,
`published_parsed`, `updated_parsed`, `tags`, `author_detail`; feedparser's `*_parsed` times are UTC
struct_times (the JSON Feed adapter hands over aware datetimes).
"""

from __future__ import annotations

import functools
import hashlib
import html
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote_plus, urljoin, urlsplit, urlunsplit

from aggregator.ingest.models import FeedMeta, Post
from aggregator.textclean import (
    clean_text,
    html_to_text,
    one_line,
    sanitize_html,
    text_to_html,
    truncate_words,
)

SUMMARY_CHARS = 300
DERIVED_TITLE_CHARS = 100
# What one entry may store (a hostile feed sent a 100,000-character title, which was stored and served
# whole). A longer text is cut at a word and ends with "…", so a reader sees it was cut; the post's
# `fields_cut` names what was, and the poll records it as a warning on its source (cut_warning).
TITLE_MAX_CHARS = 1_000
AUTHOR_MAX_CHARS = 200
CATEGORY_MAX_CHARS = 100
CATEGORIES_MAX = 50
# Links and ids in UTF-8 bytes, the unit PostgreSQL's btree indexes count in: an entry over 2,704 bytes
# is refused, and with it the whole feed's transaction. A longer link is dropped (a cut address leads
# nowhere); a longer id or dedup key is replaced by its hash, which names the entry as stably.
URL_MAX_BYTES = 2_048
# A post cannot be published after we fetched it; allow for the server's clock being a little ahead of ours.
CLOCK_SKEW = timedelta(minutes=5)

TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "mc_cid", "mc_eid", "_ga", "_gl",
        "igshid", "mkt_tok", "_hsenc", "_hsmi", "oly_anon_id", "oly_enc_id", "vero_id", "rb_clickid",
        "__twitter_impression", "ncid", "sr_share", "cmpid",
    }
)  # fmt: skip
TRACKING_PREFIXES = ("utm_",)
# Blogger's mobile switch (?m=1 / ?m=0) names the same post; WordPress's ?m=202401 (a month) is left alone.
MOBILE_SWITCH = ("m", frozenset({"0", "1"}))
DEFAULT_PORTS = {"http": 80, "https": 443}
# Blogger marks what an entry *is* with a category in this scheme; it is not a label the author chose.
KIND_SCHEMES = frozenset({"http://schemas.google.com/g/2005#kind"})
PLACEHOLDER_AUTHORS = frozenset({"unknown", "anonymous", "noreply@blogger.com"})
_NUMERIC_FRAGMENT = re.compile(r"#\d*$")
_LANG = re.compile(r"\s*([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]+)*\s*$")


# --- URLs ----------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)  # pure, and called with the same feed URL for every entry
def canonical_url(url: str | None, base: str | None = None, *, keep_fragment: bool = False) -> str | None:
    """The one spelling of a web address we store and compare; None for anything but an http(s) URL.

    The fragment is dropped from links (it names a place on the page, not the page) but can be kept for
    URLs used as ids, where it may be all that tells two entries apart.
    """
    if not url:
        return None
    try:
        raw = urljoin(base, "".join(url.split())) if base else "".join(url.split())
        parts = urlsplit(raw)
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS or not parts.hostname:
            return None
        port = parts.port
    except ValueError:  # a malformed IPv6 literal or port
        return None
    host = parts.hostname.rstrip(".")
    host = f"[{host}]" if ":" in host else host
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    fragment = parts.fragment if keep_fragment else ""
    return urlunsplit((scheme, netloc, parts.path or "/", _strip_tracking(parts.query), fragment))


def _strip_tracking(query: str) -> str:
    """Drop tracking parameters but keep every other pair byte for byte (re-encoding could change meaning)."""
    kept = []
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        name = unquote_plus(name).lower()
        if not pair or name in TRACKING_PARAMS or name.startswith(TRACKING_PREFIXES):
            continue
        if name == MOBILE_SWITCH[0] and value in MOBILE_SWITCH[1]:
            continue
        kept.append(pair)
    return "&".join(kept)


# --- dates ---------------------------------------------------------------------------------------------


def to_utc(value: time.struct_time | datetime | None, *, now: datetime) -> datetime | None:
    """A timezone-aware UTC datetime, clamped to `now` when the feed claims a time after it.

    feedparser's struct_time values are already in UTC; a naive datetime is taken to be UTC.
    """
    if value is None:
        return None
    try:
        moment = value if isinstance(value, datetime) else datetime(*value[:6], tzinfo=UTC)
    except (TypeError, ValueError, OverflowError):
        return None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    return now if moment > now + CLOCK_SKEW else moment


# --- identity ------------------------------------------------------------------------------------------


def entry_guid(entry_id: str | None, link: str | None, title: str, published: datetime | None) -> str:
    """The source's own name for the entry: its id, else its link, else a hash of what identifies it."""
    for candidate in (entry_id, link):
        if candidate and candidate.strip():
            return bounded_id(candidate.strip())
    stamp = published.isoformat() if published else ""
    return "sha256:" + hashlib.sha256(f"{title}\n{stamp}".encode()).hexdigest()[:40]


def bounded_id(value: str) -> str:
    """An id or key as is, or its hash when it is longer than an index entry may be."""
    if len(value) * 4 <= URL_MAX_BYTES or len(value.encode()) <= URL_MAX_BYTES:
        return value
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def global_id(guid: str) -> str | None:
    """The normalized id if it is unique worldwide (tag:, urn:uuid:, absolute http(s) URL), else None.

    The Atom and RSS forms of one Blogger blog carry the same `tag:blogger.com,1999:blog-….post-…` string,
    so both land on the same key.
    """
    lowered = guid.lower()
    if lowered.startswith("tag:"):
        return "tag:" + "".join(guid[4:].split())
    if lowered.startswith("urn:uuid:"):
        return "".join(lowered.split())
    if lowered.startswith(("http://", "https://")):
        url = canonical_url(guid, keep_fragment=True)
        # BBC-style "#0", "#2": a counter marking the same article re-published, not a distinct anchor.
        return _NUMERIC_FRAGMENT.sub("", url) if url else None
    return None


def dedup_key(guid: str, feed_url: str) -> str:
    """A key unique across all sources: a global id as is, a feed-local id scoped by the feed's URL."""
    return bounded_id(global_id(guid) or f"{canonical_url(feed_url) or feed_url}#{guid}")


def content_hash(title: str, text: str, url: str | None) -> str:
    """Changes exactly when what we store and show of the post changes (an edit, a moved link)."""
    return hashlib.sha256("\x1f".join((title, text, url or "")).encode()).hexdigest()


# --- entry fields --------------------------------------------------------------------------------------


def is_html_type(content_type: str | None) -> bool:
    """feedparser's type for a text construct; missing means HTML (RSS descriptions carry none)."""
    return not content_type or "html" in content_type or content_type.endswith("xml")


def is_text_type(content_type: str | None) -> bool:
    """Content we can show: HTML or any text/*; a base64 image or other binary payload is not."""
    return is_html_type(content_type) or str(content_type).startswith("text/")


def detail_text(detail: Mapping[str, Any] | None) -> str:
    """Plain text of a feedparser text construct (title, subtitle, summary)."""
    if not detail or not detail.get("value"):
        return ""
    value = str(detail["value"])
    if is_html_type(detail.get("type")):
        return html_to_text(sanitize_html(value))
    return clean_text(html.unescape(value))  # plain text is often entity-escaped twice in the wild


def language(*candidates: str | None) -> str | None:
    """The primary subtag of the first usable language tag, lowercased ("en-US" -> "en")."""
    for tag in candidates:
        match = _LANG.match(tag) if tag else None
        if match:
            return match.group(1).lower()
    return None


def categories(tags: Iterable[Mapping[str, Any]] | None) -> tuple[str, ...]:
    """The source's own labels, in order, without duplicates or Blogger's 'kind' markers."""
    seen: dict[str, None] = {}
    for tag in tags or ():
        if tag.get("scheme") in KIND_SCHEMES:
            continue
        label = one_line(str(tag.get("term") or tag.get("label") or ""))
        if label and label.casefold() not in {s.casefold() for s in seen}:
            seen[label] = None
    return tuple(seen)


def author_name(*details: Mapping[str, Any] | None) -> str | None:
    """A display name; bare e-mail addresses and Blogger's placeholders are not names."""
    for detail in details:
        name = one_line(str((detail or {}).get("name") or ""))
        if name and "@" not in name and name.lower() not in PLACEHOLDER_AUTHORS:
            return name
    return None


def summarize(summary_text: str, text: str) -> str:
    """A short plain-text teaser: the feed's own summary when it says something other than the body."""
    source = summary_text if summary_text and summary_text != text else text
    return truncate_words(source, SUMMARY_CHARS)


def derive_title(text: str, url: str | None) -> str:
    """A title for an untitled entry: its first line, else its address."""
    first_line = text.split("\n", 1)[0] if text else ""
    return truncate_words(first_line, DERIVED_TITLE_CHARS) or url or ""


# --- entry -> Post -------------------------------------------------------------------------------------


def entry_to_post(
    entry: dict[str, Any],
    *,
    feed_url: str,
    now: datetime,
    feed_lang: str | None = None,
    feed_author: Mapping[str, Any] | None = None,
) -> Post | None:
    """One feed entry as a Post, or None when it has nothing to show (no title, no content, no link)."""
    link = canonical_url(entry.get("link"), feed_url)
    body = pick_body(entry)
    display_html, text = render_body(body, base_for_body(body, link, feed_url))
    title = detail_text(entry.get("title_detail")) or one_line(html.unescape(str(entry.get("title") or "")))
    title = one_line(title)
    if not (title or text or link):
        return None
    # dict.get: FeedParserDict.get("updated_parsed") quietly answers with the *published* date when absent.
    updated = to_utc(dict.get(entry, "updated_parsed"), now=now)
    published = to_utc(entry.get("published_parsed") or entry.get("created_parsed"), now=now) or updated
    title = title or derive_title(text, link)
    guid = entry_guid(entry.get("id"), link or entry.get("link"), title, published)
    return cap_fields(Post(
        dedup_key=dedup_key(guid, feed_url),
        guid=guid,
        url=link,
        title=title,
        author=author_name(entry.get("author_detail"), *(entry.get("authors") or ()), feed_author),
        published_at=published,
        updated_at=updated,
        categories=categories(entry.get("tags")),
        html=display_html,
        text=text,
        summary=summarize(summary_text(entry, body), text),
        lang=language((body or {}).get("language"), (entry.get("title_detail") or {}).get("language"), feed_lang),
        content_hash=content_hash(title, text, link),
    ))


def pick_body(entry: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The richest rendition: HTML content (content:encoded, atom:content) before plain, content before summary."""
    contents = [c for c in entry.get("content") or () if c.get("value") and is_text_type(c.get("type"))]
    if contents:
        return max(contents, key=lambda c: (is_html_type(c.get("type")), len(c["value"])))
    detail = entry.get("summary_detail")
    if detail and detail.get("value") and is_text_type(detail.get("type")):
        return detail
    return {"type": "text/html", "value": entry["summary"]} if entry.get("summary") else None


def base_for_body(body: Mapping[str, Any] | None, link: str | None, feed_url: str) -> str | None:
    """Where relative URLs in the body point: an explicit xml:base, else the entry's page, else the feed."""
    declared = canonical_url((body or {}).get("base"))
    feed = canonical_url(feed_url)
    if declared and declared != feed:
        return declared
    return link or feed


def render_body(body: Mapping[str, Any] | None, base: str | None) -> tuple[str, str]:
    """(display HTML, plain text) of the chosen body."""
    if not body:
        return "", ""
    value = str(body.get("value") or "")
    if is_html_type(body.get("type")):
        safe = sanitize_html(value, base)
        return safe, html_to_text(safe)
    text = clean_text(value)
    return text_to_html(text), text


def summary_text(entry: Mapping[str, Any], body: Mapping[str, Any] | None) -> str:
    """Text of the feed's own summary, when it is not the very thing we already used as the body."""
    detail = entry.get("summary_detail")
    if not detail or not detail.get("value") or (body and body.get("value") == detail.get("value")):
        return ""
    return detail_text(detail)


# --- caps ----------------------------------------------------------------------------------------------


def cap_fields(post: Post) -> Post:
    """The post with every field within its cap (TITLE_MAX_CHARS, ...), naming in `fields_cut` what
    had to be cut. The content hash stays that of the whole entry: it only has to change with it."""
    cut: dict[str, Any] = {}
    if len(post.title) > TITLE_MAX_CHARS:
        cut["title"] = truncate_words(post.title, TITLE_MAX_CHARS - 1)
    if post.author and len(post.author) > AUTHOR_MAX_CHARS:
        cut["author"] = truncate_words(post.author, AUTHOR_MAX_CHARS - 1)
    if len(post.categories) > CATEGORIES_MAX or any(len(c) > CATEGORY_MAX_CHARS for c in post.categories):
        labels = (truncate_words(c, CATEGORY_MAX_CHARS - 1) for c in post.categories)
        cut["categories"] = tuple(dict.fromkeys(labels))[:CATEGORIES_MAX]
    if post.url and len(post.url.encode()) > URL_MAX_BYTES:
        cut["url"] = None
    return replace(post, **cut, fields_cut=tuple(cut)) if cut else post


def cut_warning(posts: Iterable[Post]) -> str | None:
    """One poll warning saying which fields of how many entries were cut, or None."""
    counts = Counter(name for post in posts for name in post.fields_cut)
    if not counts:
        return None
    caps = {"title": f"{TITLE_MAX_CHARS:,} characters", "author": f"{AUTHOR_MAX_CHARS:,} characters",
            "categories": f"{CATEGORIES_MAX} of {CATEGORY_MAX_CHARS} characters", "url": "dropped over "
            f"{URL_MAX_BYTES:,} bytes"}
    parts = ", ".join(f"{name} in {n:,} {'entry' if n == 1 else 'entries'} ({caps[name]})"
                      for name, n in counts.items())
    return f"cut over-long fields: {parts}"


def newest(posts: Sequence[Post], limit: int) -> tuple[tuple[Post, ...], int]:
    """At most `limit` posts, the most recently published (undated ones after every dated one, in
    document order), kept in document order; and how many were left out."""
    if len(posts) <= limit:
        return tuple(posts), 0
    oldest = datetime.min.replace(tzinfo=UTC)
    ranked = sorted(range(len(posts)), key=lambda i: posts[i].published_at or posts[i].updated_at or oldest,
                    reverse=True)  # stable: ties keep document order
    return tuple(posts[i] for i in sorted(ranked[:limit])), len(posts) - limit


# --- feed level ----------------------------------------------------------------------------------------


def feed_meta(feed: Mapping[str, Any], feed_url: str) -> FeedMeta:
    """Feed facts for the source record and the scheduler."""
    links = feed.get("links") or ()
    next_url = next((lk.get("href") for lk in links if lk.get("rel") == "next" and lk.get("href")), None)
    return FeedMeta(
        title=detail_text(feed.get("title_detail")) or one_line(str(feed.get("title") or "")) or None,
        site_url=canonical_url(feed.get("link"), feed_url),
        ttl_minutes=positive_int(feed.get("ttl")),
        next_url=canonical_url(next_url, feed_url),
        total_results=positive_int(feed.get("opensearch_totalresults"), allow_zero=True),
    )


def positive_int(value: object, *, allow_zero: bool = False) -> int | None:
    """An integer from feed text such as " 60 "; None for anything else, rather than guess."""
    text = str(value).strip() if value is not None else ""
    if not text.isdigit() or len(text) > 9:
        return None
    number = int(text)
    return number if number > 0 or (allow_zero and number == 0) else None


def collapse_duplicates(posts: Iterable[Post]) -> tuple[list[Post], int]:
    """One post per dedup_key, keeping the most recently updated (the first on a tie) in first-seen order."""
    chosen: dict[str, Post] = {}
    dropped = 0
    for post in posts:
        kept = chosen.get(post.dedup_key)
        if kept is not None:
            dropped += 1
            if _freshness(post) <= _freshness(kept):
                continue
        chosen[post.dedup_key] = post
    return list(chosen.values()), dropped


def _freshness(post: Post) -> datetime:
    return post.updated_at or post.published_at or datetime.min.replace(tzinfo=UTC)
