"""The web reader: the stream, a post, country / region / topic pages and source health, as HTML.

Every page reads posts through the API's query model (aggregator.query), so a view's URL is the
API's and the feeds' filter: `/?country=KZ&topic=terrorism` is `/api/v1/posts?country=KZ&topic=terrorism`
and `/feeds/atom?country=KZ&topic=terrorism`. Pages work without JavaScript; with it, htmx swaps only
`#main` when a filter changes (the server then sends only that fragment) and pushes the URL, and the
trend chart is drawn from `/api/v1/trends`. A bad filter value is shown on the page, with the rest
of the filter kept; an unknown post or code is a real 404 page.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import html
import json
import re
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import cache, lru_cache
from importlib import resources
from typing import Annotated, Any
from urllib.parse import quote_plus

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import RedirectResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from aggregator.db import facets as facets_db
from aggregator.db import headlines as headlines_db
from aggregator.db import post_filters as filters_db
from aggregator.db import stories as stories_db
from aggregator.db import tags as tags_db
from aggregator.db import trends as trends_db
from aggregator.errors import InvalidQueryError, NotFoundError
from aggregator.feeds_out.describe import Names, describe
from aggregator.query import (
    FILTER_PARAMS,
    Cursor,
    PostFilter,
    PostQuery,
    encode_cursor,
    language_code,
    multi_dict,
    parse_int,
    parse_post_query,
    reject_unknown,
)
from aggregator.stories.baseline import surges
from aggregator.web.context import ApiContext, TtlCache
from aggregator.web.errors import ERROR_RESPONSES, NOT_FOUND_RESPONSE
from aggregator.web.feed_cache import FeedCache, Rendered
from aggregator.web.fragments import chip_list, facet_items, iso_text, post_list, utc_text
from aggregator.web.highlight import Span, mark_pieces, mark_spans, pieces, word_starts
from aggregator.web.metrics import work_started
from aggregator.web.source_pages import source_pages

# No inline script or style anywhere: scripts and styles come from /static only.
READER_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                 "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
PAGE_PARAMS = (*FILTER_PARAMS, "sort", "cursor")
PAGE_SIZE = 30
# ISA-L's level 1 (of 0-3): the 52 KB stream in 0.07 ms to 12.4 KB, where its 3 took 0.22 ms for 12.0 KB.
# A page rendered for every request is CPU-bound, not network-bound.
PAGE_GZIP_LEVEL = 1
FACET_SAMPLE = 500  # matches whose mix the facets show when only live counting can answer (as 2,000 did)
TREND_DAYS = 90
MAX_TREND_DAYS = 366
SERIES = 5  # lines on a trend chart besides the total
MAX_ID = 2**63 - 1
TREND_PARAMETERS = [
    {"name": name, "in": "query", "required": False, "schema": {"type": "string"},
     "description": f"The {name} code (give exactly one of country, region and topic)."}
    for name in ("country", "region", "topic")
] + [{"name": "days", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 7, "maximum": 366},
      "description": "Days shown, newest last (default 90)."}]
DATE_RANGES = (("1", "24 hours"), ("7", "7 days"), ("30", "30 days"), ("90", "90 days"))
Kinds = Mapping[str, Mapping[str, int]]  # facet counts by kind of key (facets_db.by_kind)


# --- the filter in the URL -------------------------------------------------------------------

@dataclass(frozen=True)
class View:
    """A page's filter as its URL parameters (kept as given, so links reproduce them).

    A page links to a few hundred variants of its own filter (each facet, chip and map country),
    most of them changing one parameter. So each parameter is URL-encoded once per view, and for
    each parameter changed, the parameters sorted before it and after it are joined once: a link is
    then three strings put together, not the whole filter sorted and joined again."""

    params: Mapping[str, Sequence[str]]
    _encoded: dict[str, list[str]] = field(init=False, repr=False, compare=False)
    _around: dict[str, tuple[str, str]] = field(init=False, repr=False, compare=False)
    _only: dict[tuple[str, str], str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        encoded = {k: [_pair(k, v) for v in vs] for k, vs in self.params.items() if k != "cursor"}
        object.__setattr__(self, "_encoded", encoded)
        object.__setattr__(self, "_around", {})
        object.__setattr__(self, "_only", {})

    def has(self, name: str, value: str) -> bool:
        return value in self.params.get(name, ())

    def url(self, path: str = "/", **changes: Sequence[str] | str | None) -> str:
        """`path` with these parameters replaced (None or () removes one); the cursor never survives."""
        if len(changes) == 1:
            (name, values), = changes.items()
            values = () if values is None else (values,) if isinstance(values, str) else values
            return self._link(path, name, [_pair(name, v) for v in values])
        encoded = dict(self._encoded)
        for name, values in changes.items():
            values = () if values is None else (values,) if isinstance(values, str) else values
            if values:
                encoded[name] = [_pair(name, v) for v in values]
            else:
                encoded.pop(name, None)
        query = "&".join(pair for name in sorted(encoded) for pair in encoded[name])
        return f"{path}?{query}" if query else path

    def _link(self, path: str, name: str, pairs: list[str]) -> str:
        """`path` with parameter `name` given these encoded pairs, every other one as it is."""
        around = self._around.get(name)
        if around is None:
            encoded = self._encoded
            around = ("&".join(pair for other in sorted(encoded) if other < name for pair in encoded[other]),
                      "&".join(pair for other in sorted(encoded) if other > name for pair in encoded[other]))
            self._around[name] = around
        query = "&".join(part for part in (around[0], "&".join(pairs), around[1]) if part)
        return f"{path}?{query}" if query else path

    def only(self, name: str, value: str) -> str:
        """The stream with parameter `name` set to this one value: a tag chip's link. A page's thirty
        posts share most of their tags, so each link is made once per view."""
        link = self._only.get((name, value))
        if link is None:
            link = self._only[(name, value)] = self._link("/", name, [_pair(name, value)])
        return link

    def adding(self, name: str, value: str) -> str:
        return self._link("/", name, [*self._encoded.get(name, ()), _pair(name, value)])

    def removing(self, name: str, value: str) -> str:
        return self._link("/", name, [pair for v, pair in zip(self.params.get(name, ()), self._encoded.get(name, ()),
                                                              strict=True) if v != value])

    def toggling(self, name: str, value: str) -> str:
        return self.removing(name, value) if self.has(name, value) else self.adding(name, value)

    @property
    def query_string(self) -> str:
        return self.url("").lstrip("?")


_PLAIN = re.compile(r"[A-Za-z0-9_.~-]*")  # what quote_plus leaves as it is


@lru_cache(maxsize=4096)
def _pair(name: str, value: str) -> str:
    """name=value as urlencode writes it (quote_plus), without its cost for the plain codes most values
    are; kept, since a page links to the same hundred-odd codes as every other page."""
    return "=".join(part if _PLAIN.fullmatch(part) else quote_plus(part) for part in (name, value))


def lenient_query(params: dict[str, list[str]], parse: Callable[[dict[str, list[str]]], PostQuery],
                  ) -> tuple[PostQuery, dict[str, list[str]], list[str]]:
    """The query the parameters describe, less each parameter that is wrong (with why, for the page)."""
    params = {k: v for k, v in params.items()}
    problems: list[str] = []
    unknown = sorted(set(params) - set(PAGE_PARAMS))
    for name in unknown:
        problems.append(f"{name}: not a filter of this page")
        params.pop(name)
    for _ in range(len(PAGE_PARAMS) + 1):
        try:
            return parse(params), params, problems
        except InvalidQueryError as exc:
            problems.append(str(exc))
            if exc.parameter not in params:
                break
            params.pop(exc.parameter)
    return parse({}), {}, problems


# --- what templates show ---------------------------------------------------------------------

@dataclass
class Chip:
    code: str
    name: str
    href: str


@dataclass
class Item:
    id: int
    title: Markup | str
    url: str | None
    source: str | None
    published: datetime
    estimated: bool
    lang: str | None
    summary: Markup | str
    countries: list[Chip] = field(default_factory=list)
    topics: list[Chip] = field(default_factory=list)
    places: list[Chip] = field(default_factory=list)
    story_id: int | None = None
    story_sources: int = 0  # sources that reported the post's story ("N sources" links to it)


@dataclass
class Facet:
    code: str
    name: str
    count: int | None
    href: str
    active: bool


class Reader:
    """What the pages share, built once per app: templates, taxonomy names, the map, asset versions,
    and the cache of rendered pages (the feeds' cache: emptied whenever a post changes)."""

    def __init__(self, ctx: ApiContext, cache: FeedCache) -> None:
        self.ctx = ctx
        self.cache = cache
        self.settings = ctx.settings
        taxonomy = ctx.taxonomy
        self.countries = dict(taxonomy.countries)
        self.topics = dict(taxonomy.topics)
        self.places = {code: place.name for code, place in taxonomy.places.items()}
        self.regions = {code: region.name for code, region in taxonomy.regions.items()}
        self.region_members = {code: sorted(region.countries) for code, region in taxonomy.regions.items()}
        # regions that are part of a country: the places they are made of (a trend is split by these)
        self.region_places = {code: sorted(places) for code, places in taxonomy.region_places.items() if places}
        self.focus = {c for members in self.region_members.values() for c in members}
        # the filter lists before their counts are known: by name
        self.focus_by_name = sorted(((c, self.countries.get(c, c)) for c in self.focus), key=lambda cn: cn[1])
        self.topics_by_name = sorted(self.topics.items(), key=lambda tn: tn[1])
        self.source_names: TtlCache[dict[int, str]] = TtlCache(SOURCE_NAMES_SECONDS)
        self.env = _environment()
        self.env.globals.update(asset=asset_url, countries=self.countries, topics=self.topics, regions=self.regions,
                                chip_list=chip_list, facet_items=facet_items, post_list=post_list)
        outline = resources.files("aggregator.web").joinpath("static/region-map.svg").read_text("utf-8")
        self.map_box: str = re.search(r'viewBox="([^"]+)"', outline).group(1)  # type: ignore[union-attr]
        self.map_codes: list[str] = sorted(re.findall(r'<path id="([A-Z]{2})"', outline))
        outlines = asset_url("region-map.svg")
        self.map_parts = {code: (html.escape(self.countries.get(code, code)), html.escape(f"{outlines}#{code}"))
                          for code in self.map_codes}  # (name, outline), escaped

    def read(self) -> Any:
        return self.ctx.read()

    @staticmethod
    def _partial(request: Request) -> bool:
        headers = request.headers
        return headers.get("hx-request") == "true" and headers.get("hx-history-restore-request") != "true"

    def _key(self, request: Request) -> Hashable:
        """What a rendering depends on: the address, fragment or page, the site's base URL (in the
        feed links) and the day (in the date-range links)."""
        return ("page", request.url.path, request.url.query, self._partial(request), str(request.base_url),
                datetime.now(UTC).date())

    def cached(self, request: Request) -> Response | None:
        """The page from the cache when nothing changed since it was rendered. Called first by every
        page, in its request thread: the page's work starts here (Server-Timing's `wait` ends)."""
        work_started(request.scope)
        found = self.cache.get(self._key(request))
        return None if found is None else self._answer(request, found, 200)

    def page(self, request: Request, template: str, status: int = 200, token: int | None = None,
             **context: Any) -> Response:
        """A whole page, or (htmx asking for a swap) only its `#main`; with an ETag, answered 304 when
        it matches. A 200 rendered from a snapshot taken after `token` was read is cached."""
        partial = self._partial(request)
        name = template.replace(".html", "_main.html") if partial and template in PARTIALS else template
        body = self.env.get_template(name).render(request_path=request.url.path, **context).encode()
        rendered = Rendered(f'W/"{hashlib.sha256(body).hexdigest()[:24]}"', None, "text/html; charset=utf-8", body,
                            gzip_level=PAGE_GZIP_LEVEL)
        if status == 200:
            self.cache.put(self._key(request), token, rendered)
        return self._answer(request, rendered, status)

    @staticmethod
    def _answer(request: Request, rendered: Rendered, status: int) -> Response:
        headers = {"Content-Security-Policy": READER_POLICY, "Cache-Control": "no-cache", "ETag": rendered.etag,
                   "Vary": "HX-Request, Accept-Encoding"}
        if status == 200 and etag_matches(request.headers.get("if-none-match"), rendered.etag):
            return Response(status_code=304, headers=headers)
        if "gzip" in request.headers.get("accept-encoding", "") and len(rendered.body or b"") > 1000:
            headers["Content-Encoding"] = "gzip"  # compressed once per rendering, not per answer
            return Response(rendered.gzipped(), status_code=status, media_type=rendered.media_type, headers=headers)
        return Response(rendered.body, status_code=status, media_type=rendered.media_type, headers=headers)

    def not_found(self, request: Request, what: str) -> Response:
        return self.page(request, "not_found.html", 404, title="Not found", what=what)

    # --- building blocks ----------------------------------------------------------------------

    def chips(self, view: View, countries: Iterable[str], topics: Iterable[str]) -> tuple[list[Chip], list[Chip]]:
        return ([Chip(c, self.countries.get(c, c), view.only("country", c)) for c in countries],
                [Chip(t, self.topics.get(t, t), view.only("topic", t)) for t in topics])

    def place_chips(self, view: View, codes: Iterable[str]) -> list[Chip]:
        return [Chip(p, self.places.get(p, p), view.only("place", p)) for p in codes]

    def items(self, view: View, rows: Sequence[filters_db.PostRow],
              marks: Mapping[int, tuple[Markup | str, Markup | str]] | None = None) -> list[Item]:
        """The posts as listed (rows read with `tags`), a search's with the words it matched marked
        (`marks`: search_marks)."""
        result = []
        for r in rows:
            countries, topic_chips = self.chips(view, r.primary_tags or (), r.topic_tags or ())
            title, summary = marks[r.id] if marks and r.id in marks else (r.title, r.summary)
            result.append(Item(r.id, title, r.url, r.source_name or r.source_url, r.sort_at,
                               r.published_at is None, r.lang, summary, countries, topic_chips,
                               self.place_chips(view, r.place_tags or ()), r.story_id, r.story_sources or 0))
        return result

    def facets(self, view: View, kinds: Kinds, sources: Sequence[tuple[int, int, str]], *,
               listed: bool = False) -> dict[str, list[Facet]]:
        """The filter lists beside the posts, biggest first, from the counts split by kind
        (facets_db.by_kind); `listed`: counts not known yet, so every topic and the regions'
        countries by name (links that work before the counts arrive)."""
        def facet(kind: str, name: str, code: str, label: str, count: int | None) -> Facet:
            return Facet(code, label, count, view.toggling(name, code), view.has(name, code))

        if listed:
            return {
                "regions": [facet("region", "region", code, name, None) for code, name in self.regions.items()],
                "countries": [facet("country", "country", c, name, None) for c, name in self.focus_by_name],
                "topics": [facet("topic", "topic", t, name, None) for t, name in self.topics_by_name],
                "sources": [], "langs": [],
            }

        countries = sorted(kinds.get("c", {}).items(), key=lambda cn: (cn[0] not in self.focus, -cn[1], cn[0]))
        topics = sorted(kinds.get("t", {}).items(), key=lambda cn: (-cn[1], cn[0]))
        langs = sorted(kinds.get("l", {}).items(), key=lambda cn: (-cn[1], cn[0]))
        in_regions = kinds.get("r", {})
        regions = sorted(((code, in_regions.get(code, 0)) for code in self.regions
                          if code in in_regions or view.has("region", code)),
                         key=lambda cn: (-cn[1], self.regions[cn[0]]))
        return {
            "regions": [facet("region", "region", code, self.regions[code], n) for code, n in regions],
            "countries": [facet("country", "country", c, self.countries.get(c, c), n) for c, n in countries[:40]],
            "topics": [facet("topic", "topic", t, self.topics.get(t, t), n) for t, n in topics],
            "sources": [facet("source", "source", str(i), name, n) for i, n, name in sources],
            "langs": [facet("lang", "lang", code, code, n) for code, n in langs],
        }

    def choropleth(self, view: View, kinds: Kinds) -> Markup:
        """The map's countries, shaded by their counts (split by kind), each a link that adds it to
        the filter. Built here rather than in the template: a map of sixty countries was four hundred
        escaped values, a fifth of the stream's rendering; only a link is escaped per view now (names once)."""
        in_countries = kinds.get("c", {})
        known = {code: in_countries.get(code, 0) for code in self.map_codes}
        top = max(known.values(), default=0)
        parts = []
        for code in self.map_codes:
            count = known[code]
            level = 0 if not count else min(5, 1 + int(5 * count / (top + 1)))
            name, outline = self.map_parts[code]
            parts.append(f'<a href="{html.escape(view.adding("country", code))}" tabindex="-1" '
                         f'aria-label="{name}: {count} posts"><use class="q{level}" href="{outline}">'
                         f"<title>{name}: {count}</title></use></a>")
        return Markup("".join(parts))

    def feeds(self, request: Request, view: View) -> dict[str, str]:
        base = (self.settings.feeds_base_url or str(request.base_url)).rstrip("/")
        query = View({k: v for k, v in view.params.items() if k in FILTER_PARAMS}).query_string
        return {fmt: f"{base}/feeds/{fmt}" + (f"?{query}" if query else "") for fmt in ("atom", "rss", "json")}

    def subscribe_link(self, view: View) -> str:
        wanted = {k: v for k, v in view.params.items() if k in ("country", "region", "topic", "q")}
        return View(wanted).url("/subscribe")


PARTIALS = ("stream.html", "filters.html")
SOURCES_LISTED = 15  # the busiest sources of a view, in its facets
# How old a source's name in a filter list may be: a renamed source shows its new name within this
# (a kept page, until a post changes, as before).
SOURCE_NAMES_SECONDS = 60.0


@cache
def _environment() -> Environment:
    env = Environment(loader=PackageLoader("aggregator.web", "templates"), autoescape=select_autoescape(("html",)),
                      trim_blocks=True, lstrip_blocks=True, undefined=StrictUndefined, auto_reload=False)
    env.filters["iso"] = iso_text
    env.filters["utc"] = utc_text
    return env


@cache
def asset_url(name: str) -> str:
    """/static/NAME?v=HASH: the hash changes with the file, so the file can be cached for a year."""
    data = resources.files("aggregator.web").joinpath("static", name).read_bytes()
    return f"/static/{name}?v={hashlib.sha256(data).hexdigest()[:12]}"


def etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    opaque = etag.removeprefix("W/")
    return header.strip() == "*" or any(c.strip().removeprefix("W/") == opaque for c in header.split(","))


# --- the routes ------------------------------------------------------------------------------

def reader_router(ctx: ApiContext, cache: FeedCache) -> APIRouter:
    reader = Reader(ctx, cache)
    router = APIRouter(include_in_schema=False)

    def parse(params: dict[str, list[str]]) -> PostQuery:
        return parse_post_query(params, ctx.vocabulary, max_limit=PAGE_SIZE, default_limit=PAGE_SIZE)

    @router.get("/")
    def stream(request: Request) -> Response:
        """The posts of a view. Its facet counts are on the page when the rollup answers them (no
        filter, one country or one topic); any other view's are counted live from its matches, which
        costs many times the list, so the page comes without them and loads them from /filters. So
        does every view while most of the rollup is being rebuilt (a change of region definitions);
        such a page is not kept, so the counts are on it again once the rollup is whole."""
        if (cached := reader.cached(request)) is not None:
            return cached
        token = reader.cache.token()
        query, kept, problems = lenient_query(multi_dict(request.query_params.multi_items()), parse)
        view = View(kept)
        with reader.read() as conn:
            dirty = _dirty_months(conn, query.filter)
            deferred = not facets_db.rollup_answers(query.filter, dirty)
            if _provisional(query.filter, dirty):
                token = None  # the counts come once the rollup is rebuilt, which changes no post
            rows = filters_db.list_posts(conn, query, tags=True)
            page, more = rows[:PAGE_SIZE], len(rows) > PAGE_SIZE
            items = reader.items(view, page, search_marks(conn, query.filter.q, page))
            kinds = {} if deferred else facets_db.by_kind(facets_db.counts(conn, query.filter, days=0, regions=True,
                                                                           dirty=dirty))
            sources = busiest_sources(conn, kinds.get("s", {}), SOURCES_LISTED, reader.source_names)
        last = page[-1] if page else None
        older = view.url(cursor=encode_cursor(Cursor(query.sort, last.sort_at, last.id, last.rank))) \
            if more and last else None
        status = 400 if problems else 200
        return reader.page(
            request, "stream.html", status, token, title=_title(reader, query.filter), view=view, items=items,
            older=older, sampled=False, deferred=deferred, panel_url=view.url("/filters"),
            problems=problems, facets=reader.facets(view, kinds, sources, listed=deferred),
            filters=_active(reader, view), map=Markup() if deferred else reader.choropleth(view, kinds),
            map_box=reader.map_box,
            feeds=reader.feeds(request, view), subscribe=reader.subscribe_link(view), q=query.filter.q or "",
            date_ranges=_date_ranges(view), total=facets_db.kinds_total(kinds),
            described=describe(query.filter, _names(reader))[1], first_page="cursor" not in kept)

    @router.get("/filters")
    def filters(request: Request) -> Response:
        """The facet counts of a view (with htmx: only the panel that replaces the stream's list of
        filters); where only live counting answers, those of its newest FACET_SAMPLE matches."""
        if (cached := reader.cached(request)) is not None:
            return cached
        token = reader.cache.token()
        query, kept, problems = lenient_query(multi_dict(request.query_params.multi_items()), parse)
        view = View(kept)
        with reader.read() as conn:
            counts, sampled, provisional = facet_counts(conn, query.filter)
            kinds = facets_db.by_kind(counts)
            sources = busiest_sources(conn, kinds.get("s", {}), SOURCES_LISTED, reader.source_names)
        return reader.page(
            request, "filters.html", 400 if problems else 200, None if provisional else token,
            title=_title(reader, query.filter), deferred=True, sampled=sampled, total=facets_db.kinds_total(kinds),
            stream_url=view.url("/"),
            described=describe(query.filter, _names(reader))[1], facets=reader.facets(view, kinds, sources),
            map=reader.choropleth(view, kinds), map_box=reader.map_box)

    @router.get("/posts/{post_id}")
    def post(request: Request, post_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> Response:
        if (cached := reader.cached(request)) is not None:
            return cached
        token = reader.cache.token()
        with reader.read() as conn:
            row = filters_db.get_post(conn, post_id)
            if row is None:
                return reader.not_found(request, f"post {post_id}")
            tags = tags_db.for_post(conn, post_id)
            linked = filters_db.sources_of(conn, post_id)
            story = stories_db.get(conn, row.story_id) if row.story_id else None
            primary = [t.code for t in tags if t.kind == "country" and t.role == "primary"]
            topics = [t.code for t in tags if t.kind == "topic"]
            like = []
            if primary or topics:
                similar = PostQuery(PostFilter(countries=tuple(primary), topics=tuple(topics[:3])), limit=6)
                like = [r for r in filters_db.list_posts(conn, similar, tags=True) if r.id != post_id][:5]
                like_items = reader.items(View({}), like)
            else:
                like_items = []
        spans = {"title": [], "text": []}
        evidence = []
        for t in tags:
            label = {"country": reader.countries, "place": reader.places}.get(t.kind, reader.topics).get(t.code, t.code)
            for e in t.evidence or []:
                if e.get("field") in spans:
                    spans[e["field"]].append(Span(int(e["start"]), int(e["end"]), label))
            evidence.append({"kind": t.kind, "code": t.code, "name": label, "role": t.role, "score": t.score,
                             "phrases": sorted({str(e.get("phrase")) for e in t.evidence or []})})
        view = View({})
        countries, topic_chips = reader.chips(view, primary, topics)
        return reader.page(
            request, "post.html", 200, token, title=row.title, post=row,
            marked_title=mark_spans(row.title, spans["title"]),
            marked_text=mark_spans(row.text, spans["text"]), sources=linked, evidence=evidence,
            countries=countries, topic_chips=topic_chips, like=like_items,
            place_chips=reader.place_chips(view, [t.code for t in tags if t.kind == "place"]),
            estimated=row.published_at is None, story=story)

    @router.get("/stories/{story_id}")
    def story(request: Request, story_id: Annotated[int, Path(ge=1, le=MAX_ID)],
              lang: Annotated[str | None, Query(max_length=8)] = None) -> Response:
        """One event as the outlets reported it, oldest report first, titled in `lang` when one of
        its reports is in it; a merged story's old address moves to the story it joined."""
        work_started(request.scope)
        lang = language_code(lang)
        with reader.read() as conn:
            found = stories_db.resolve(conn, story_id)
            if found is None:
                return reader.not_found(request, f"story {story_id}")
            if found.id != story_id:
                return RedirectResponse(f"/stories/{found.id}" + (f"?lang={lang}" if lang else ""), status_code=301)
            posts = stories_db.posts_of(conn, found.id)
            if lang:
                title = stories_db.titles_in(conn, [found.id], lang).get(found.id)
                found = dataclasses.replace(found, title=title or found.title)
        sources = list(dict.fromkeys(p.source_name for p in posts if p.source_name))
        return reader.page(request, "story.html", title=found.title, story=found, posts=posts, sources=sources)

    def dimension(request: Request, kind: str, code: str, name: str, params: dict[str, list[str]]) -> Response:
        if (cached := reader.cached(request)) is not None:
            return cached
        token = reader.cache.token()
        query = parse(params)
        view = View(params)
        with reader.read() as conn:
            rows = filters_db.list_posts(conn, replace(query, limit=10), tags=True)[:10]
            items = reader.items(view, rows)
            counts, sampled, provisional = facet_counts(conn, query.filter)
            kinds = facets_db.by_kind(counts)
            busiest = busiest_sources(conn, kinds.get("s", {}), 10, reader.source_names)
        if provisional:
            token = None
        listed = sorted(((name, n, i) for i, n, name in busiest), key=lambda x: (-x[1], x[0]))
        total = facets_db.kinds_total(kinds)
        return reader.page(
            request, "dimension.html", 200, token, title=name, sampled=sampled, kind=kind, code=code, name=name,
            view=view, items=items,
            top_sources=[(n, c, view.url("/", source=[str(i)])) for n, c, i in listed], total=total,
            trend_url=f"/api/v1/trends?{kind}={code}", stream_url=view.url("/"), feeds=reader.feeds(request, view),
            subscribe=reader.subscribe_link(view), members=[(c, reader.countries.get(c, c))
                                                            for c in reader.region_members.get(code, [])],
            places=[(p, reader.places.get(p, p)) for p in reader.region_places.get(code, []) if p != code]
            if kind == "region" else [])

    @router.get("/countries/{code}")
    def country_page(request: Request, code: str) -> Response:
        code = code.upper()
        if code not in reader.countries:
            return reader.not_found(request, f"country {code[:8]}")
        return dimension(request, "country", code, reader.countries[code], {"country": [code]})

    @router.get("/regions/{code}")
    def region_page(request: Request, code: str) -> Response:
        if code not in reader.regions:
            return reader.not_found(request, f"region {code[:40]}")
        return dimension(request, "region", code, reader.regions[code], {"region": [code]})

    @router.get("/topics/{code}")
    def topic_page(request: Request, code: str) -> Response:
        if code not in reader.topics:
            return reader.not_found(request, f"topic {code[:40]}")
        return dimension(request, "topic", code, reader.topics[code], {"topic": [code]})

    source_pages(router, reader)

    @router.get("/api/v1/trends", include_in_schema=True, tags=["taxonomy"], responses={**ERROR_RESPONSES,
                **NOT_FOUND_RESPONSE}, summary="Posts per day of a country, region or topic, split, with surge days",
                openapi_extra={"parameters": TREND_PARAMETERS})
    def trends(request: Request) -> Response:
        work_started(request.scope)
        key = ("trends", request.url.query, datetime.now(UTC).date())
        if (found := reader.cache.get(key)) is not None:
            return Response(found.body, media_type=found.media_type, headers={"Cache-Control": "max-age=60"})
        token = reader.cache.token()
        params = multi_dict(request.query_params.multi_items())
        reject_unknown(params, ("country", "region", "topic", "days"))
        days = parse_int(params["days"][0], "days", 7, MAX_TREND_DAYS) if params.get("days") else TREND_DAYS
        country, region, topic = ((params.get(k) or [None])[0] for k in ("country", "region", "topic"))
        chosen = [(k, v) for k, v in (("country", country), ("region", region), ("topic", topic)) if v]
        if len(chosen) != 1:
            raise InvalidQueryError("country", "give exactly one of country, region or topic")
        kind, code = chosen[0]
        code = code.upper() if kind == "country" else code.lower()
        names = {"country": reader.countries, "region": reader.regions, "topic": reader.topics}[kind]
        if code not in names:
            raise NotFoundError(kind, code)
        end = datetime.now(UTC).date() + timedelta(days=1)
        # a baseline needs the weeks before the first day shown
        start = end - timedelta(days=days + 28)
        with reader.read() as conn:
            found = trends_db.daily(conn, kind, code, start, end)
        totals, split = found.totals, found.split
        # a region is split by its members: the places of one that is part of a country, else its countries
        if kind == "region":
            other = reader.places if code in reader.region_places else reader.countries
        else:
            other = reader.topics if kind == "country" else reader.countries
        body = json.dumps(trend_json(kind, code, names[code], start, end, days, totals, split, other)).encode()
        reader.cache.put(key, token, Rendered(f'"{hashlib.sha256(body).hexdigest()[:24]}"', None, "application/json",
                                              body))
        return Response(body, media_type="application/json", headers={"Cache-Control": "max-age=60"})

    return router


def trend_json(kind: str, code: str, name: str, start: date, end: date, days: int, totals: Counter[date],
               split: Counter[tuple[date, str]], names: Mapping[str, str]) -> dict[str, Any]:
    """The chart's data: the last `days` days, the busiest split keys as series, surge days marked
    against the baseline of the weeks before each day (which is why `start` reaches further back)."""
    every = [start + timedelta(days=i) for i in range((end - start).days)]
    counts = [totals.get(d, 0) for d in every]
    shown = every[-days:]
    flagged = {every[s.index]: s for s in surges(counts)}
    by_key: Counter[str] = Counter()
    for (d, key), n in split.items():
        if d >= shown[0]:
            by_key[key] += n
    series = [{"key": key, "name": names.get(key, key), "counts": [split.get((d, key), 0) for d in shown]}
              for key, _ in sorted(by_key.items(), key=lambda kv: (-kv[1], kv[0]))[:SERIES]]  # ties: by key
    return {"kind": kind, "code": code, "name": name, "days": [d.isoformat() for d in shown],
            "total": counts[-days:], "series": series,
            "surges": [{"day": d.isoformat(), "count": s.count, "baseline": s.baseline} for d, s in flagged.items()
                       if d >= shown[0]]}


def facet_counts(conn: Any, f: PostFilter) -> tuple[Counter[str], bool, bool]:
    """(counts, sampled, provisional): exact from the rollup where it answers; else over the newest
    FACET_SAMPLE matches (sampled is True when there were at least that many, so the page says so).
    The rollup does not answer while most of it is being rebuilt (a change of region definitions):
    the pages then show samples for that while instead of counting a million posts on every
    request, and are not kept (provisional), since the rebuild that makes them exact changes no post."""
    dirty = _dirty_months(conn, f)
    if facets_db.rollup_answers(f, dirty):
        return facets_db.counts(conn, f, days=0, regions=True, dirty=dirty), False, False
    found = facets_db.sampled(conn, f, newest=FACET_SAMPLE)
    return found, facets_db.post_total(found) >= FACET_SAMPLE, _provisional(f, dirty)


def search_marks(conn: Any, q: str | None, rows: Sequence[filters_db.PostRow],
                 ) -> dict[int, tuple[Markup | str, Markup | str]]:
    """Each post's title and summary with the words the search `q` matches marked, by post id
    (aggregator.web.highlight, aggregator.db.headlines); none without a search."""
    if not q:
        return {}
    starts = word_starts(q)  # None for a search of no words: no pieces, nothing asked
    found = [(r, pieces(starts, r.title), pieces(starts, r.summary)) for r in rows]
    asked = {(text[begin:end], r.lang) for r, in_title, in_summary in found
             for text, spans in ((r.title, in_title), (r.summary, in_summary)) for begin, end in spans}
    marked = headlines_db.marked_pieces(conn, q, asked)
    return {r.id: (mark_pieces(r.title, r.lang, in_title, marked), mark_pieces(r.summary, r.lang, in_summary, marked))
            for r, in_title, in_summary in found}


def _dirty_months(conn: Any, f: PostFilter) -> list[date]:
    """The rollup's changed months, read only for a filter the rollup can answer."""
    return [] if facets_db.rollup_dim(f) is None else facets_db.dirty_months(conn)


def _provisional(f: PostFilter, dirty: Sequence[date]) -> bool:
    """Whether the rollup would answer this filter but is being rebuilt."""
    return facets_db.rollup_dim(f) is not None and not facets_db.rollup_answers(f, dirty)


def busiest_sources(conn: Any, sources: Mapping[str, int], n: int,
                    names: TtlCache[dict[int, str]] | None = None) -> list[tuple[int, int, str]]:
    """The `n` sources with the most posts, (id, posts, name), busiest first (ties: the older source),
    of the counts by source id (facets_db.by_kind's 's'). `names`: every source's name, read at most
    every SOURCE_NAMES_SECONDS (a round trip less for each page); a source added since is looked up alone."""
    # only the ids that can be among the n are made numbers (to break ties): a view has hundreds of sources
    least = heapq.nlargest(n, sources.values())[-1] if 0 < n < len(sources) else 0
    top = [(-negative, c) for c, negative in heapq.nlargest(n, ((c, -int(i)) for i, c in sources.items()
                                                                if c >= least))]
    known = {} if names is None else names.get(lambda: facets_db.source_names(conn, None))
    missing = [i for i, _ in top if i not in known]
    if missing:
        known = {**known, **facets_db.source_names(conn, missing)}
    return [(i, c, known.get(i, str(i))) for i, c in top]


def _names(reader: Reader) -> Names:
    return Names(countries=reader.countries, regions=reader.regions, topics=reader.topics)


def _title(reader: Reader, f: PostFilter) -> str:
    parts = [reader.countries.get(c, c) for c in f.countries] + [reader.regions.get(r, r) for r in f.regions] \
        + [reader.topics.get(t, t) for t in f.topics]
    if f.q:
        parts.append(f"“{f.q}”")
    return ", ".join(parts) if parts else "Latest"


def _active(reader: Reader, view: View) -> list[tuple[str, str]]:
    """(label, link that removes it) for each value of the filter."""
    labels = {"country": reader.countries, "region": reader.regions, "topic": reader.topics, "place": reader.places}
    result = []
    for name in FILTER_PARAMS:
        for value in view.params.get(name, ()):
            label = labels.get(name, {}).get(value.upper() if name == "country" else value, value)
            prefix = {"q": "words", "since": "since", "until": "until", "lang": "language", "source": "source",
                      "role": "role", "match": "match"}.get(name)
            result.append((f"{prefix}: {label}" if prefix else label, view.removing(name, value)))
    return result


def _date_ranges(view: View) -> list[tuple[str, str, bool]]:
    """(label, link, current) for the last day, week, month, quarter and all time (since= as a date)."""
    today = datetime.now(UTC).date()
    current = (view.params.get("since") or [None])[0]
    ranges = []
    for days, label in DATE_RANGES:
        since = (today - timedelta(days=int(days))).isoformat()
        ranges.append((label, view.url(since=since), current == since))
    ranges.append(("all time", view.url(since=None, until=None), current is None))
    return ranges
