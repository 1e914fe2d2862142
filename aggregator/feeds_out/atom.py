"""Atom 1.0 (RFC 4287) documents, built as an element tree by lxml: nothing is pasted as text.

Each entry carries its own author (the post's, else its source's), so the feed needs none; the
source appears both as <source> (RFC 4287 §4.2.11) and as a rel="via" link readers show.
"""

from __future__ import annotations

from lxml import etree

from aggregator.feeds_out.model import GENERATOR, MEDIA_TYPES, Channel, Item, language_tag, rfc3339, xml_text

ATOM = "http://www.w3.org/2005/Atom"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def _el(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{ATOM}}}{tag}", {k: xml_text(v) for k, v in attrs.items()})
    if text is not None:
        element.text = xml_text(text)
    return element


def _link(parent: etree._Element, rel: str, href: str, media_type: str | None = None) -> None:
    attrs = {"rel": rel, "href": href, **({"type": media_type} if media_type else {})}
    _el(parent, "link", **attrs)


def _entry(feed: etree._Element, item: Item) -> None:
    entry = _el(feed, "entry")
    lang = language_tag(item.lang)
    if lang:
        entry.set(XML_LANG, lang)
    _el(entry, "id", item.id)
    _el(entry, "title", item.title, type="text")
    if item.url:
        _link(entry, "alternate", item.url, "text/html")
    if item.origin and (item.origin.site_url or item.origin.feed_url):
        _link(entry, "via", item.origin.site_url or item.origin.feed_url or "")
    if item.published is not None:  # optional in Atom: an undated entry has only <updated>
        _el(entry, "published", rfc3339(item.published))
    _el(entry, "updated", rfc3339(item.updated))
    _el(_el(entry, "author"), "name", item.author)
    for category in item.categories:
        _el(entry, "category", term=category.term, scheme=category.scheme, label=category.label)
    if item.summary:
        _el(entry, "summary", item.summary, type="text")
    _el(entry, "content", item.html, type="html")
    if item.origin:
        source = _el(entry, "source")
        if item.origin.feed_url:
            _el(source, "id", item.origin.feed_url)
            _link(source, "self", item.origin.feed_url)
        if item.origin.site_url:
            _link(source, "alternate", item.origin.site_url, "text/html")
        _el(source, "title", item.origin.title, type="text")


def build_atom(channel: Channel) -> bytes:
    feed = etree.Element(f"{{{ATOM}}}feed", nsmap={None: ATOM})
    _el(feed, "id", channel.id)
    _el(feed, "title", channel.title, type="text")
    _el(feed, "subtitle", channel.subtitle, type="text")
    _link(feed, "self", channel.self_url, MEDIA_TYPES["atom"])
    _link(feed, "alternate", channel.home_url, "application/json")
    for fmt, url in channel.alternates.items():
        if fmt != "atom":
            _link(feed, "alternate", url, MEDIA_TYPES[fmt])
    _el(feed, "updated", rfc3339(channel.updated))
    _el(feed, "generator", GENERATOR, **({"version": channel.version} if channel.version else {}))
    for item in channel.items:
        _entry(feed, item)
    return etree.tostring(feed, xml_declaration=True, encoding="utf-8")
