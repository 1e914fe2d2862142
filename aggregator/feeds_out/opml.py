"""OPML 2.0 export of the saved feeds, so a reader can subscribe to all of them at once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

from lxml import etree

from aggregator.feeds_out.model import utc, xml_text


@dataclass(frozen=True, slots=True)
class Outline:
    title: str
    xml_url: str  # the feed
    html_url: str  # the same posts in the API (a page, once there are pages)


def build_opml(title: str, outlines: Sequence[Outline], created: datetime) -> bytes:
    opml = etree.Element("opml", {"version": "2.0"})
    head = etree.SubElement(opml, "head")
    etree.SubElement(head, "title").text = xml_text(title)
    etree.SubElement(head, "dateCreated").text = format_datetime(utc(created), usegmt=True)
    body = etree.SubElement(opml, "body")
    for outline in outlines:
        etree.SubElement(body, "outline", {"type": "rss", "text": xml_text(outline.title),
                                           "title": xml_text(outline.title), "xmlUrl": xml_text(outline.xml_url),
                                           "htmlUrl": xml_text(outline.html_url)})
    return etree.tostring(opml, xml_declaration=True, encoding="utf-8")
