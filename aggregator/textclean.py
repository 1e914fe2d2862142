"""HTML for display and plain text for search: pure functions, no I/O.

feedparser runs with its own sanitizer and URI resolver switched off (they are its slowest parts); nh3 (the
Rust `ammonia` sanitizer) does both here, several times faster. Plain text is then cut from nh3's *output*, not
from the raw feed HTML: nh3 serializes a well-formed tree (every attribute double-quoted, `<`/`>`/`&` escaped in
text), so a single regular expression tokenizes it exactly and no second HTML parser is needed.
"""

from __future__ import annotations

import html
import re

import nh3

SAFE_URL_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "noopener noreferrer nofollow"

# Removed together with everything inside them: their content is code, widgets or controls, never prose.
DROPPED_WITH_CONTENT = frozenset(
    {
        "script", "style", "iframe", "object", "embed", "applet", "form", "button", "select", "textarea",
        "noscript", "template", "frame", "frameset", "title", "svg", "math",
    }
)  # fmt: skip

# ammonia (inside nh3) checks the scheme of href and src but not of cite, which it allows on blockquote,
# del, ins and q: `<blockquote cite="javascript:…">` would come out as it went in. No reader needs the
# attribute, so it goes; the shorter allow-list is passed only when "cite" occurs at all, because
# handing nh3 an attribute map costs more than sanitizing a short post.
_ATTRIBUTES_WITHOUT_CITE = {tag: set(names) - {"cite"} for tag, names in nh3.ALLOWED_ATTRIBUTES.items()}
_CITE = re.compile("cite", re.IGNORECASE)

MAX_TAGS_UNCHECKED = 5000
MAX_BLOCK_DEPTH = 500
_BLOCK_CONTAINER = re.compile(
    r"<(/?)(?:div|ul|ol|dl|blockquote|section|article|aside|nav|header|footer|figure|figcaption|details"
    r"|summary|address|center|dir|menu|main|fieldset|hgroup|dialog|search)\b",
    re.IGNORECASE,
)
_CODE_BLOCK = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_ANY_MARKUP = re.compile(r"<[^>]*>")

_PARAGRAPH_TAGS = frozenset(
    {
        "p", "div", "blockquote", "pre", "ul", "ol", "dl", "table", "h1", "h2", "h3", "h4", "h5", "h6",
        "hr", "figure", "section", "article", "aside", "header", "footer", "nav", "details", "center",
    }
)  # fmt: skip
_LINE_TAGS = frozenset({"br", "li", "dt", "dd", "tr", "caption", "figcaption", "summary", "hgroup"})
_CELL_TAGS = frozenset({"td", "th"})

# Exact for nh3 output: attribute values are always quoted there (written as an unrolled loop: it is hot).
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)[^>\"']*(?:(?:\"[^\"]*\"|'[^']*')[^>\"']*)*>")
_SOURCE_LINE_BREAK = re.compile(r"[\t\n\r\f]+")  # only these: matching every single space is slow
_ANY_WHITESPACE = re.compile(r"\s+")
_INVISIBLE = re.compile("[\u00ad\u200b\u200c\u200d\u2060\ufeff\x00-\x08\x0b\x0e-\x1f\x7f]")
_BLANK_LINES = re.compile(r"\n{3,}")

_SHARE = r"(?:Email This|BlogThis!|Share to (?:Twitter|X|Facebook|Pinterest|LinkedIn)|Share|Tweet)"
_BOILERPLATE_LINE = re.compile(
    "|".join(
        (
            r"(?:No|\d+) comments?:?",
            r"Post a Comment",
            r"(?:(?:Newer Post|Older Post|Home)\s*){1,3}",
            r"Subscribe to:\s*(?:Post Comments|Posts|Comments)\s*\((?:Atom|RSS)\)",
            rf"Posted by .{{1,100}}? at \d{{1,2}}:\d{{2}}(?:\s?[AaPp]\.?[Mm]\.?)?(?:\s*{_SHARE})*",
            rf"(?:{_SHARE}\s*)+",
            r"The post .{1,300} appeared first on .{1,200}",
        )
    ).join(("^(?:", ")$")),
    re.IGNORECASE,
)


def sanitize_html(fragment: str, base_url: str | None = None) -> str:
    """Make feed HTML safe to embed in our pages, with relative URLs made absolute against `base_url`.

    Without a usable base, relative URLs are dropped: they would point into our own site.
    """
    if not fragment:
        return ""
    if too_deeply_nested(fragment):
        return text_to_html(_strip_markup(fragment))
    try:
        return _clean(fragment, ("rewrite_with_base", base_url) if base_url else "deny")
    except ValueError:  # nh3 refuses a base it cannot parse as an absolute URL
        return _clean(fragment, "deny")


def too_deeply_nested(fragment: str) -> bool:
    """True for HTML whose block nesting would make html5ever (inside nh3) take quadratic time.

    Each block start tag makes the HTML5 tree builder scan the open-element stack, so 100,000 unclosed
    <div>s take ~20 s. Deep nesting needs many tags, so ordinary posts skip the scan on a cheap count.
    """
    if fragment.count("<") <= MAX_TAGS_UNCHECKED:
        return False
    depth = 0
    for match in _BLOCK_CONTAINER.finditer(fragment):
        depth = max(depth - 1, 0) if match.group(1) else depth + 1
        if depth > MAX_BLOCK_DEPTH:
            return True
    return False


def _strip_markup(fragment: str) -> str:
    """Text of HTML we refuse to parse as a tree: linear, and the result is escaped again for display."""
    without_code = _CODE_BLOCK.sub(" ", fragment)
    return html.unescape(_ANY_MARKUP.sub(" ", without_code))


def _clean(fragment: str, url_relative: str | tuple[str, str]) -> str:
    return nh3.clean(
        fragment,
        attributes=_ATTRIBUTES_WITHOUT_CITE if _CITE.search(fragment) else None,  # None: nh3's defaults
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        url_schemes=set(SAFE_URL_SCHEMES),
        link_rel=LINK_REL,
        url_relative=url_relative,
    )


def html_to_text(fragment: str) -> str:
    """Readable plain text from sanitized HTML: blocks become lines/paragraphs, page boilerplate is dropped.

    Expects nh3 output (see the module docstring); run `sanitize_html` first for any other HTML.
    """
    if not fragment:
        return ""
    flat = _SOURCE_LINE_BREAK.sub(" ", fragment)  # source line breaks are just spaces in HTML
    return clean_text(html.unescape(_TAG.sub(_break_for_tag, flat)))


def _break_for_tag(match: re.Match[str]) -> str:
    name = match.group(2).lower()
    if name in _PARAGRAPH_TAGS:
        return "\n\n"
    if name in _LINE_TAGS:
        return "" if match.group(1) else "\n"  # one break per list item or row, not two
    if name in _CELL_TAGS:
        return " "
    return ""


def clean_text(text: str) -> str:
    """Normalize plain text: invisible characters gone, spaces collapsed, at most one blank line in a row."""
    text = _INVISIBLE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    lines = (" ".join(line.split()) for line in text.split("\n"))  # str.split knows Unicode spaces, fast
    kept = "\n".join(line for line in lines if not _BOILERPLATE_LINE.match(line))
    return _BLANK_LINES.sub("\n\n", kept).strip()


def one_line(text: str) -> str:
    """Collapse all whitespace (titles, summaries are shown on one line)."""
    return _ANY_WHITESPACE.sub(" ", _INVISIBLE.sub("", text)).strip()


def text_to_html(text: str) -> str:
    """Display HTML for content that the feed declared as plain text: escaped, paragraphs kept."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "".join(f"<p>{html.escape(p.strip()).replace(chr(10), '<br>')}</p>" for p in paragraphs)


def truncate_words(text: str, limit: int) -> str:
    """Cut to about `limit` characters at a word boundary, marking the cut with an ellipsis."""
    text = one_line(text)
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit + 1)
    if cut < limit * 0.6:  # one enormous word (a URL, CJK text without spaces): cut inside it
        cut = limit
    return text[:cut].rstrip(" ,;:-–—") + "…"
