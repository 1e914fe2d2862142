"""The parts of a page repeated hundreds of times, written in Python rather than in a template.

A stream page has some 250 links in its tag chips and filter lists, and thirty posts of a dozen
values each. In a template each `{{ }}` is a call to markupsafe's `escape` and a new `Markup`, about
half a microsecond apiece, with a call of the template's loop machinery around each: the post
list alone was a quarter of the web process's CPU for a page rendered for every request. Here each
value is escaped by `html.escape` (five string replacements, returning a plain string), a tag chip
once for all the pages that show it, and the result is one `Markup`, which the template inserts as
it is. Everything else on a page stays in its template; the map is built the same way
(Reader.choropleth).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
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


class Listed(Protocol):
    """A post as a list shows it (aggregator.web.reader.Item)."""

    id: int
    title: str  # a Markup when it carries a search's marks
    source: str | None
    published: datetime
    estimated: bool
    lang: str | None
    summary: str  # as the title
    countries: Sequence[Linked]
    topics: Sequence[Linked]
    places: Sequence[Linked]
    story_id: int | None
    story_sources: int


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def utc_text(moment: datetime | None) -> str:
    """'5 Dec 2026, 21:34 UTC' (pages are in English whatever the server's locale; strftime, which
    follows it, cost three times as much, once per post listed)."""
    return _words(moment.astimezone(UTC)) if moment else "-"


def _words(m: datetime) -> str:
    return f"{m.day} {_MONTHS[m.month - 1]} {m.year}, {m.hour:02d}:{m.minute:02d} UTC"


def iso_text(moment: datetime | None) -> str:
    """The moment for a <time datetime=…> (which the page's script shows in the reader's time zone)."""
    return moment.astimezone(UTC).isoformat() if moment else ""


def _time(moment: datetime) -> str:
    """A <time> element of the moment: iso_text's attribute, utc_text's words (in UTC once)."""
    m = moment.astimezone(UTC)
    return f'<time datetime="{m.isoformat()}">{_words(m)}</time>'


def _html(value: str) -> str:
    """A value escaped, unless it is markup already (a search's marked title or summary, escaped
    where its marks were put in: aggregator.web.highlight)."""
    return str(value) if isinstance(value, Markup) else escape(value)


_ESTIMATED = (' <abbr class="estimated" title="The feed gave no date: this is when the post was first seen">'
              "(date estimated)</abbr>")


def post_list(items: Sequence[Listed]) -> Markup:
    """A list of posts: each its title linked to its page, source, date, language, the story it is
    part of when other sources reported it too, its tags and its summary."""
    parts = ['<ol class="posts">\n']
    for item in items:
        meta = [f'<span class="source">{escape(item.source)}</span> · ' if item.source else "",
                _time(item.published),
                _ESTIMATED if item.estimated else "",
                f' · <span class="lang" lang="en">{escape(item.lang)}</span>' if item.lang else "",
                f' · <a class="story-link" href="/stories/{item.story_id}">{item.story_sources} sources</a>'
                if item.story_id and item.story_sources > 1 else ""]
        parts.append(
            f'  <li class="post">\n    <article aria-labelledby="post-{item.id}">\n'
            f'      <h3 id="post-{item.id}"><a class="post-link" href="/posts/{item.id}">{_html(item.title)}</a></h3>\n'
            f'      <p class="meta">{"".join(meta)}</p>\n'
            f"      {chip_list(item.countries, item.places, item.topics)}\n"
            + (f'      <p class="summary">{_html(item.summary)}</p>\n' if item.summary else "")
            + "    </article>\n  </li>\n")
    parts.append("</ol>")
    return Markup("".join(parts))


def chip_list(countries: Sequence[Linked], places: Sequence[Linked], topics: Sequence[Linked]) -> Markup:
    """A post's tags as a list of links, countries first (nothing when it has none)."""
    if not countries and not places and not topics:
        return Markup()
    parts = ['<ul class="chips" aria-label="Tags">']
    for kind, chips in (("country", countries), ("place", places), ("topic", topics)):
        parts.extend(_chip(kind, c.href, c.name) for c in chips)
    parts.append("</ul>")
    return Markup("".join(parts))


@lru_cache(maxsize=4096)
def _chip(kind: str, href: str, name: str) -> str:
    """One tag chip: the same few dozen recur on every post of a page, and from page to page."""
    return f'<li><a class="chip {kind}" href="{escape(href)}">{escape(name)}</a></li>'


def facet_items(facets: Sequence[Counted]) -> Markup:
    """The entries of one filter list: each a link that adds or removes it, marked when it is in
    the filter, with its count when it is known."""
    return Markup("".join(
        f'<li><a href="{escape(f.href)}"{_CURRENT if f.active else ""}><span class="name">{escape(f.name)}</span>'
        f'{"" if f.count is None else _COUNT.format(f.count)}</a></li>\n'
        for f in facets))


_CURRENT = ' aria-current="true"'
_COUNT = ' <span class="n">{:,}</span>'
