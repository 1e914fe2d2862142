"""RSS 2.0 documents, built as an element tree by lxml.

RSS has one text field per item, so the plain summary goes to <description> and the HTML to
<content:encoded> (what feed readers prefer when present); the author goes to <dc:creator>, since
RSS's own <author> must be an e-mail address. The channel points to itself with <atom:link
rel="self">, as the RSS Advisory Board recommends.

RSS never says whether a text is HTML, and many readers guess that it is. Item titles and summaries
reach the builders with anything tag-like already reduced to its text (aggregator.web.feed_handler);
author and source names (chosen by other people's feeds) and the feed's own title and description
(which quote the words of its URL) are reduced here. Atom and JSON Feed declare all of these plain
text, and carry them as they are.
"""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime

from lxml import etree

from aggregator.feeds_out.model import GENERATOR, MEDIA_TYPES, Channel, Item, utc, xml_text
from aggregator.textclean import html_to_text, sanitize_html

ATOM = "http://www.w3.org/2005/Atom"
CONTENT = "http://purl.org/rss/1.0/modules/content/"
DC = "http://purl.org/dc/elements/1.1/"
NSMAP = {"atom": ATOM, "content": CONTENT, "dc": DC}
DOCS = "https://www.rssboard.org/rss-specification"


def _el(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, tag, {k: xml_text(v) for k, v in attrs.items()})
    if text is not None:
        element.text = xml_text(text)
    return element


def _text(value: str) -> str:
    return html_to_text(sanitize_html(value)) if "<" in value else value


def _date(moment: datetime) -> str:
    return format_datetime(utc(moment), usegmt=True)


def _item(channel: etree._Element, item: Item) -> None:
    element = _el(channel, "item")
    _el(element, "title", item.title)
    if item.url:
        _el(element, "link", item.url)
    _el(element, "guid", item.id, isPermaLink="false")
    if item.published is not None:  # optional in RSS: readers date an undated item by its arrival
        _el(element, "pubDate", _date(item.published))
    _el(element, f"{{{DC}}}creator", _text(item.author))
    for category in item.categories:
        _el(element, "category", category.label, domain=category.scheme)
    _el(element, "description", item.summary)
    _el(element, f"{{{CONTENT}}}encoded", item.html)
    if item.origin and item.origin.feed_url:
        _el(element, "source", _text(item.origin.title), url=item.origin.feed_url)


def build_rss(channel: Channel) -> bytes:
    rss = etree.Element("rss", {"version": "2.0"}, nsmap=NSMAP)
    head = _el(rss, "channel")
    _el(head, "title", _text(channel.title))
    _el(head, "link", channel.home_url)
    _el(head, "description", _text(channel.subtitle))
    _el(head, f"{{{ATOM}}}link", rel="self", type=MEDIA_TYPES["rss"], href=channel.self_url)
    _el(head, "lastBuildDate", _date(channel.updated))
    _el(head, "generator", f"{GENERATOR} {channel.version}".strip())
    _el(head, "docs", DOCS)
    if channel.ttl_minutes:
        _el(head, "ttl", str(channel.ttl_minutes))
    for item in channel.items:
        _item(head, item)
    return etree.tostring(rss, xml_declaration=True, encoding="utf-8")
