"""The parts of a page repeated hundreds of times, written in Python rather than in a template.

A stream page has some 250 links in its tag chips and filter lists. In a template each `{{ }}` is
a call to markupsafe's `escape` and a new `Markup`, about half a microsecond apiece, and those
two lists were more than half of the page's escapes: a tenth of the web process's CPU for a page
that is rendered for every request. Here each value is escaped by `html.escape` (in C, returning a
plain string) and the result is one `Markup`, which the template inserts as it is. Everything else
on a page stays in its template; the map is built the same way (Reader.choropleth).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Protocol

from markupsafe import Markup


class Linked(Protocol):
    """A chip or a facet: what it is called and where it leads."""

    name: str
    href: str


class Counted(Linked, Protocol):
    count: int | None
    active: bool


def chip_list(countries: Sequence[Linked], places: Sequence[Linked], topics: Sequence[Linked]) -> Markup:
    """A post's tags as a list of links, countries first (nothing when it has none)."""
    if not countries and not places and not topics:
        return Markup()
    parts = ['<ul class="chips" aria-label="Tags">']
    for kind, chips in (("country", countries), ("place", places), ("topic", topics)):
        parts.extend(f'<li><a class="chip {kind}" href="{escape(c.href)}">{escape(c.name)}</a></li>' for c in chips)
    parts.append("</ul>")
    return Markup("".join(parts))


def facet_items(facets: Sequence[Counted]) -> Markup:
    """The entries of one filter list: each a link that adds or removes it, marked when it is in
    the filter, with its count when it is known."""
    return Markup("".join(
        f'<li><a href="{escape(f.href)}"{_CURRENT if f.active else ""}><span class="name">{escape(f.name)}</span>'
        f'{"" if f.count is None else _COUNT.format(f.count)}</a></li>\n'
        for f in facets))


_CURRENT = ' aria-current="true"'
_COUNT = ' <span class="n">{:,}</span>'
