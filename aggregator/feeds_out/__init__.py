"""Filtered feeds out: pure builders from a filter and its posts to Atom, RSS 2.0 and JSON Feed bytes.

    model.py     the format-free records (Channel, Item, Category, Origin) and stable ids
    describe.py  a filter in words ("Kazakhstan · Terrorism") and as a canonical query / feed URLs
    atom.py rss.py jsonfeed.py opml.py   one format each, built with lxml or json, never by pasting text

No database and no web framework here: aggregator.web.feeds reads the posts and serves the bytes.
"""

from __future__ import annotations

from collections.abc import Callable

from aggregator.feeds_out.atom import build_atom
from aggregator.feeds_out.describe import Names, canonical_query, describe, discovery_links, feed_links
from aggregator.feeds_out.jsonfeed import build_json
from aggregator.feeds_out.model import MEDIA_TYPES, Category, Channel, Item, Origin, entry_id, uuid_urn
from aggregator.feeds_out.rss import build_rss

BUILDERS: dict[str, Callable[[Channel], bytes]] = {"atom": build_atom, "rss": build_rss, "json": build_json}


def render(fmt: str, channel: Channel) -> bytes:
    return BUILDERS[fmt](channel)


__all__ = [
    "BUILDERS", "MEDIA_TYPES", "Category", "Channel", "Item", "Names", "Origin", "canonical_query", "describe",
    "discovery_links", "entry_id", "feed_links", "render", "uuid_urn",
]
