"""What in a piece of HTML could run script (or load active content) in a browser or mail client.

Parsed with the standard library's HTML tokenizer, not matched with patterns on the source: an
attribute value is looked at after entity decoding (`&#106;avascript&colon;`), with every
whitespace and control character removed (`jav&#x09;ascript:`) and case-folded, which is what
browsers do before they look at a URL's scheme. The checker is deliberately stricter than a
browser (a `data:` image, a `<style>` element, any inline style are all reported): our sanitized
output never needs them, so anything stricter costs nothing and a looser check could miss a hole.

Two callers need a little of what it forbids: our own page templates (a `<style>` element, forms,
`<meta charset>`) and the digest email (inline CSS, the only styling mail clients honour). They
pass `own_elements` / `own_inline_css`; elements and CSS that could carry script are still reported.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

ACTIVE_ELEMENTS = frozenset(
    {
        "script", "iframe", "frame", "frameset", "object", "embed", "applet", "form", "base", "meta", "link",
        "style", "svg", "math", "portal", "isindex", "param",
    }
)  # fmt: skip
URL_ATTRIBUTES = frozenset(
    {
        "href", "src", "srcset", "action", "formaction", "xlink:href", "poster", "background", "data", "codebase",
        "cite", "longdesc", "dynsrc", "lowsrc", "classid", "archive", "manifest", "icon", "profile", "ping",
    }
)  # fmt: skip
# Elements whose content is text, not markup, up to their end tag: a browser running scripts reads
# `<noscript><p title="</noscript><img onerror=…>">` as text, an end tag and a live <img>. A browser
# without scripts parses noscript content as markup (a <meta http-equiv> there still works). The
# document is read both ways.
SCRIPTING_RAW_TEXT = ("script", "style", "noscript", "xmp", "iframe", "noembed", "noframes", "textarea", "title")
NO_SCRIPTING_RAW_TEXT = ("script", "style", "xmp", "iframe", "noembed", "noframes", "textarea", "title")
SCRIPT_SCHEMES = ("javascript:", "vbscript:", "data:", "livescript:", "mocha:")
ALWAYS_ACTIVE_ATTRIBUTES = frozenset({"srcdoc", "http-equiv"})
STATES = frozenset({"selected", "checked"})

_INVISIBLE = re.compile(r"[\x00-\x20\x7f-\x9f\u00a0\u1680\u2000-\u200f\u2028\u2029\u202f\u205f\u3000\ufeff]+")
_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|$)", re.DOTALL)
_CSS_ESCAPE = re.compile(r"\\([0-9a-fA-F]{1,6})\s?|\\(.)", re.DOTALL)
_ACTIVE_CSS = re.compile(r"url\(|image-set\(|expression|javascript:|vbscript:|behavior|binding|@import", re.IGNORECASE)


def url_scheme_is_active(value: str) -> bool:
    """True for a URL that runs script or embeds a document when followed or loaded.

    Callers pass attribute values html.parser has decoded already; decoding once more also catches
    double encoding, which a reader that unescapes a second time would turn live."""
    folded = _INVISIBLE.sub("", html.unescape(value)).lower()
    return folded.startswith(SCRIPT_SCHEMES)


def srcset_urls(value: str) -> list[str]:
    """The candidate URLs of a srcset ("url 1x, url 2x")."""
    return [candidate.split()[0] for candidate in value.split(",") if candidate.split()]


def css_is_active(value: str) -> bool:
    """True for CSS that loads something or runs script (url(), expression(), bindings, @import),
    however its author hid it with comments or CSS escapes."""
    unescaped = _CSS_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)) if m.group(1) else m.group(2), value)
    return bool(_ACTIVE_CSS.search(_INVISIBLE.sub("", _CSS_COMMENT.sub("", unescaped))))


class _Finder(HTMLParser):
    def __init__(self, own_elements: frozenset[str], own_inline_css: bool, raw_text: tuple[str, ...]) -> None:
        super().__init__(convert_charrefs=True)
        self.CDATA_CONTENT_ELEMENTS = raw_text
        self.own_elements = own_elements
        self.own_inline_css = own_inline_css
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ACTIVE_ELEMENTS and tag not in self.own_elements:
            self.found.append(f"<{tag}>")
        for name, raw in attrs:
            self._attribute(tag, name, raw or "")

    def _attribute(self, tag: str, name: str, value: str) -> None:
        if self._is_active(name, value):
            self.found.append(f"{name}={value[:60]!r} on <{tag}>")

    def _is_active(self, name: str, value: str) -> bool:
        if name.startswith("on") or name in ALWAYS_ACTIVE_ATTRIBUTES:
            return True
        if name == "style":
            return not self.own_inline_css or css_is_active(value)
        if name == "srcset":
            return any(url_scheme_is_active(url) for url in srcset_urls(value))
        return name in URL_ATTRIBUTES and url_scheme_is_active(value)


def active_content(fragment: str, *, own_elements: frozenset[str] = frozenset(),
                   own_inline_css: bool = False) -> list[str]:
    """Everything in `fragment` that could run script or load active content; empty when it is inert."""
    if "<" not in fragment:
        return []
    found: list[str] = []
    for raw_text in (SCRIPTING_RAW_TEXT, NO_SCRIPTING_RAW_TEXT):
        finder = _Finder(own_elements, own_inline_css, raw_text)
        finder.feed(fragment)
        finder.close()
        found += [problem for problem in finder.found if problem not in found]
    return found


def skeleton(document: str) -> list[tuple[str, tuple[str, ...]]]:
    """The document's tags and their attribute names, in order: an injected value that breaks out of
    its attribute or text node changes it, whatever the value was. Which option is selected or box
    checked is the form's state, not its structure, and is left out."""
    tags: list[tuple[str, tuple[str, ...]]] = []

    class _Tags(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            tags.append((tag, tuple(name for name, _ in attrs if name not in STATES)))

        def handle_endtag(self, tag: str) -> None:
            tags.append((f"/{tag}", ()))

    parser = _Tags(convert_charrefs=True)
    parser.feed(document)
    parser.close()
    return tags


def text_and_attributes(document: str) -> tuple[str, list[str]]:
    """The document's text (decoded, as a reader sees it) and all its attribute values (decoded)."""
    texts: list[str] = []
    values: list[str] = []

    class _Collect(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            values.extend(v for _, v in attrs if v is not None)

        def handle_data(self, data: str) -> None:
            texts.append(data)

    parser = _Collect(convert_charrefs=True)
    parser.feed(document)
    parser.close()
    return "".join(texts), values
