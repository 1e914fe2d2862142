"""JSON Feed 1.1 (https://jsonfeed.org/version/1.1) documents.

What JSON Feed has no field for (the codes behind the tags, the source, that an undated item's
only date is when it was first seen) travels in the `_aggregator` extension object, as the spec
allows for keys starting with an underscore.
"""

from __future__ import annotations

import json
from typing import Any

from aggregator.feeds_out.model import Channel, Item, language_tag, rfc3339

VERSION = "https://jsonfeed.org/version/1.1"


def _item(item: Item) -> dict[str, Any]:
    data: dict[str, Any] = {"id": item.id}
    if item.url:
        data["url"] = item.url
    data.update(title=item.title, content_html=item.html, summary=item.summary)
    if item.published is not None:
        data["date_published"] = rfc3339(item.published)
    data.update(date_modified=rfc3339(item.updated), authors=[{"name": item.author}],
                tags=[c.label for c in item.categories])
    lang = language_tag(item.lang)
    if lang:
        data["language"] = lang
    extension: dict[str, Any] = {"categories": [{"term": c.term, "label": c.label, "scheme": c.scheme}
                                                for c in item.categories]}
    if item.date_estimated:  # the source gave no date: date_modified is when it was first seen
        extension["date_estimated"] = True
    if item.origin:
        extension["source"] = {"title": item.origin.title, "feed_url": item.origin.feed_url,
                               "home_page_url": item.origin.site_url}
    data["_aggregator"] = extension
    return data


def build_json(channel: Channel) -> bytes:
    document = {
        "version": VERSION,
        "title": channel.title,
        "home_page_url": channel.home_url,
        "feed_url": channel.self_url,
        "description": channel.subtitle,
        "items": [_item(item) for item in channel.items],
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
