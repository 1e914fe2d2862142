"""The reader's pages as HTTP answers: the same filters as the API, bad input shown on the page,
real 404 pages, a strict CSP, ETags, htmx fragments, cached static files. The browser tests
(test_reader_browser.py) cover what needs a browser."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from lxml import html as lxml_html

from aggregator.config import Settings
from aggregator.db import Database
from aggregator.db.facets import by_kind, kinds_total, post_total
from aggregator.runtime import build_web_app
from aggregator.web.context import TtlCache
from aggregator.web.fragments import utc_text
from aggregator.web.highlight import Span, mark_spans
from aggregator.web.reader import READER_POLICY, View, busiest_sources, lenient_query
from tests.api.conftest import DATA, Corpus, TestClient, ids
from tests.api.conftest import corpus as corpus
from tests.support.feedserver import FeedServer
from tests.support.network import wait_for
from tests.support.polling import serve_and_poll

PAGES = ["/", "/?country=KZ", "/countries/KZ", "/regions/central-asia", "/topics/terrorism", "/sources"]


def links(body: str, selector: str) -> list[str]:
    return [a.get("href") for a in lxml_html.fromstring(body).cssselect(selector)]


def post_ids(body: str) -> list[int]:
    return [int(h.rsplit("/", 1)[1]) for h in links(body, "a.post-link")]


@pytest.mark.parametrize("params", [
    {}, {"country": "AF"}, {"topic": "terrorism"}, {"region": "central-asia", "topic": "terrorism"},
    {"country": "KZ", "role": "primary"}, {"q": "border"}, {"lang": "ru"}, {"since": "2025-01-10"},
])
def test_the_stream_lists_what_the_api_lists(corpus: Corpus, params: dict[str, str]) -> None:
    page = corpus.client.get("/", params=params)
    assert page.status_code == 200
    api = corpus.client.get("/api/v1/posts", params={**params, "limit": 30}).json()
    assert post_ids(page.text) == ids(api)


def test_a_search_marks_its_words_in_titles_and_summaries(corpus: Corpus) -> None:
    page = lxml_html.fromstring(corpus.client.get("/", params={"q": "border OR Russian"}).text)
    marks = [m.text_content() for m in page.cssselect("a.post-link mark, p.summary mark")]
    assert marks and {m.lower().rstrip("s") for m in marks} <= {"border", "russian", "russia"}, marks
    assert not lxml_html.fromstring(corpus.client.get("/?country=KZ").text).cssselect("mark")


def test_keyset_pages_follow_the_older_link(corpus: Corpus) -> None:
    seen: list[int] = []
    url = "/?country=AF"
    while url:
        body = corpus.client.get(url).text
        seen += post_ids(body)
        older = links(body, "a.older")
        url = older[0] if older else ""
    everything = corpus.client.get("/api/v1/posts", params={"country": "AF", "limit": 100}).json()
    assert seen == ids(everything) and len(seen) == len(set(seen))


@pytest.mark.parametrize(("params", "message", "kept"), [
    ({"country": ["KZ", "XX"], "topic": "terrorism"}, "country: unknown code 'XX'", {"topic": ["terrorism"]}),
    ({"since": "yesterday-ish", "country": "AF"}, "since", {"country": ["AF"]}),
    ({"q": "x" * 300, "topic": "terrorism"}, "q", {"topic": ["terrorism"]}),
    ({"colour": "red", "country": "AF"}, "colour: not a filter of this page", {"country": ["AF"]}),
])
def test_a_bad_filter_value_is_shown_and_the_rest_kept(corpus: Corpus, params: dict[str, object], message: str,
                                                        kept: dict[str, list[str]]) -> None:
    page = corpus.client.get("/", params=params)
    assert page.status_code == 400
    alert = lxml_html.fromstring(page.text).cssselect("[role=alert]")[0].text_content()
    assert message in alert
    expected = corpus.client.get("/api/v1/posts", params={**kept, "limit": 30}).json()
    assert post_ids(page.text) == ids(expected)


@pytest.mark.parametrize("path", ["/posts/999999999", "/countries/XX", "/regions/atlantis", "/topics/gardening"])
def test_unknown_things_get_a_real_404_page(corpus: Corpus, path: str) -> None:
    page = corpus.client.get(path)
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>Not found</h1>" in page.text


def server_timing(header: str) -> dict[str, float]:
    return {name: float(value) for name, value in re.findall(r"(\w+);dur=([\d.]+)", header)}


@pytest.mark.parametrize("path", ["/", "/countries/KZ", "/api/v1/trends?country=KZ"])
def test_a_page_says_how_long_it_waited_for_a_thread_and_how_long_it_took(corpus: Corpus, path: str) -> None:
    """Under load a page's latency is mostly its wait for a request thread: the server tells it from
    the work (Server-Timing), which a client's clock cannot."""
    timing = server_timing(corpus.client.get(path).headers["server-timing"])
    assert set(timing) == {"wait", "app", "total"}
    assert timing["app"] > 0 and timing["wait"] >= 0
    assert abs(timing["wait"] + timing["app"] - timing["total"]) <= 0.15  # each rounded to 0.1 ms
    # an answer whose work is not marked says only how long the server held it
    assert set(server_timing(corpus.client.get("/api/v1/posts?limit=1").headers["server-timing"])) == {"total"}


@pytest.mark.parametrize("path", PAGES)
def test_pages_carry_a_strict_policy_and_an_etag(corpus: Corpus, path: str) -> None:
    page = corpus.client.get(path)
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert policy == READER_POLICY and "unsafe" not in policy
    assert not re.search(r"<script(?![^>]*\bsrc=)", page.text), "no inline script"
    assert not re.search(r"<style|\sstyle=", page.text), "no inline style"
    again = corpus.client.get(path, headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_htmx_gets_only_the_main_fragment(corpus: Corpus) -> None:
    full = corpus.client.get("/?country=AF")
    fragment = corpus.client.get("/?country=AF", headers={"HX-Request": "true"})
    restore = corpus.client.get("/?country=AF", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert fragment.text.lstrip().startswith('<main id="main"') and "<html" not in fragment.text
    assert restore.text == full.text and "<html" in full.text
    assert fragment.headers["vary"].lower().find("hx-request") >= 0
    assert post_ids(fragment.text) == post_ids(full.text)


def test_static_files_are_versioned_and_cached(corpus: Corpus) -> None:
    page = corpus.client.get("/").text
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
    assert {a.split("?")[0] for a in assets} >= {"/static/app.css", "/static/app.js", "/static/vendor/htmx.min.js"}
    for asset in assets:
        answer = corpus.client.get(asset)
        assert answer.status_code == 200
        assert "immutable" in answer.headers["cache-control"]
        assert "v=" in asset
    assert corpus.client.get("/static/app.css").headers["cache-control"] == "no-cache"


def test_no_page_refers_to_another_host(corpus: Corpus) -> None:
    post = ids(corpus.client.get("/api/v1/posts", params={"limit": 1}).json())[0]
    for path in [*PAGES, f"/posts/{post}"]:
        doc = lxml_html.fromstring(corpus.client.get(path).text)
        loaded = doc.xpath("//script/@src | //link/@href | //img/@src | //iframe/@src | //form/@action")
        assert all(not urlsplit(u).netloc or urlsplit(u).netloc == "testserver" for u in loaded), (path, loaded)


def test_facet_links_add_to_the_filter_and_chosen_ones_remove(corpus: Corpus) -> None:
    doc = lxml_html.fromstring(corpus.client.get("/?topic=terrorism").text)
    [kz] = [a for a in doc.cssselect("section[aria-labelledby=facet-countries] a") if "Kazakhstan" in a.text_content()]
    assert parse_qs(urlsplit(kz.get("href")).query) == {"country": ["KZ"], "topic": ["terrorism"]}
    [chosen] = doc.cssselect("section[aria-labelledby=facet-topics] a[aria-current]")
    assert parse_qs(urlsplit(chosen.get("href")).query) == {}


def test_trend_json_rejects_what_it_cannot_answer(corpus: Corpus) -> None:
    assert corpus.client.get("/api/v1/trends").status_code == 400
    assert corpus.client.get("/api/v1/trends?country=KZ&topic=terrorism").status_code == 400
    assert corpus.client.get("/api/v1/trends?country=XX").status_code == 404
    assert corpus.client.get("/api/v1/trends?country=KZ&days=5000").status_code == 400
    body = corpus.client.get("/api/v1/trends?region=central-asia&days=30").json()
    assert len(body["days"]) == len(body["total"]) == 30


def test_the_sources_page_sorts_and_shows_health(corpus: Corpus) -> None:
    for sort in ("name", "health", "last_success", "posts", "rate", "nonsense"):
        page = corpus.client.get("/sources", params={"sort": sort})
        assert page.status_code == 200
        assert len(lxml_html.fromstring(page.text).cssselect("table.sources tbody tr")) == len(corpus.sources)


# --- the pure parts ---------------------------------------------------------------------------

def test_marks_escape_the_text_and_merge_overlaps() -> None:
    text = "<b>Kazakhstan</b> & Kyrgyzstan"
    marked = mark_spans(text, [Span(3, 13, "KZ"), Span(3, 8, "KZ"), Span(20, 30, "KG"), Span(25, 99, "bad")])
    assert str(marked) == ('&lt;b&gt;<mark title="KZ">Kazakhstan</mark>&lt;/b&gt; &amp; '
                           '<mark title="KG">Kyrgyzstan</mark>')


def test_view_urls_round_trip_the_filter() -> None:
    view = View({"country": ["KZ"], "topic": ["terrorism"], "cursor": ["abc"]})
    assert view.adding("country", "AF") == "/?country=KZ&country=AF&topic=terrorism"
    assert view.removing("country", "KZ") == "/?topic=terrorism"
    assert view.toggling("topic", "terrorism") == "/?country=KZ"
    assert view.url("/feeds/atom") == "/feeds/atom?country=KZ&topic=terrorism"


def _link_by_rule(path: str, params: dict[str, list[str]]) -> str:
    """A view's link written plainly: every parameter but the cursor, names sorted, values in order."""
    query = urlencode([(name, value) for name in sorted(params) if name != "cursor" for value in params[name]])
    return f"{path}?{query}" if query else path


def test_view_links_follow_the_rule_for_any_filter() -> None:
    """Random filters (names before and after the one changed, values needing escapes, a cursor):
    each link a page builds equals the filter changed and encoded from scratch."""
    rng = random.Random(3)
    names = ["country", "cursor", "lang", "place", "q", "region", "source", "topic", "since"]
    values = ["KZ", "AF", "terrorism", "a b", "x&y=z", "Кабул", '"a phrase" -not', "7", ""]
    for trial in range(300):
        params = {name: rng.sample(values, rng.randint(1, 3)) for name in rng.sample(names, rng.randint(0, 5))}
        view = View(params)
        name, value = rng.choice(names), rng.choice(values)
        if name == "cursor":
            continue
        listed = params.get(name, [])
        assert view.adding(name, value) == _link_by_rule("/", {**params, name: [*listed, value]}), trial
        assert view.removing(name, value) == _link_by_rule("/", {**params, name: [v for v in listed if v != value]})
        toggled = [v for v in listed if v != value] if value in listed else [*listed, value]
        assert view.toggling(name, value) == _link_by_rule("/", {**params, name: toggled}), trial
        assert view.url("/", **{name: [value]}) == _link_by_rule("/", {**params, name: [value]}), trial
        assert view.only(name, value) == view.only(name, value) == view.url("/", **{name: [value]}), trial
        assert view.url("/feeds/atom", **{name: None}) == _link_by_rule("/feeds/atom", {**params, name: []}), trial
        assert view.url("/filters") == _link_by_rule("/filters", params), trial
        other = rng.choice([n for n in names if n != name])
        assert view.url("/", **{name: value, other: ()}) == _link_by_rule("/", {**params, name: [value], other: []})
        assert view.query_string == _link_by_rule("", params).lstrip("?"), trial


def test_lenient_query_drops_only_the_bad_parameters() -> None:
    from aggregator.errors import InvalidQueryError

    def parse(params: dict[str, list[str]]) -> dict[str, list[str]]:
        bad = [k for k, v in params.items() if "bad" in v]
        if bad:
            raise InvalidQueryError(bad[0], "is bad")
        return params

    _, kept, problems = lenient_query({"country": ["bad"], "topic": ["ok"], "lang": ["bad"]}, parse)  # type: ignore[arg-type]
    assert kept == {"topic": ["ok"]} and len(problems) == 2


def test_a_cached_page_is_rendered_again_once_a_post_arrives(db: Database, settings: Settings,
                                                              feed_server: FeedServer) -> None:
    """Pages are kept per process until PostgreSQL says posts changed (the feeds' cache and signal)."""
    first = {"/a.rss": (DATA / "kabul_wire.rss").read_bytes()}
    serve_and_poll(db, settings, feed_server, first)
    with TestClient(build_web_app(settings, db)) as client:
        wait_for(lambda: client.app.state.api is not None and "Kabul" in client.get("/").text, 10, what="the page")
        before = client.get("/")
        assert client.get("/", headers={"If-None-Match": before.headers["etag"]}).status_code == 304
        serve_and_poll(db, settings, feed_server, {"/b.rss": (DATA / "steppe_watch.atom").read_bytes()})
        wait_for(lambda: client.get("/").headers["etag"] != before.headers["etag"], 10, what="the change signal")
        assert post_ids(client.get("/").text) == ids(client.get("/api/v1/posts", params={"limit": 30}).json())


def test_a_search_lists_its_posts_at_once_and_counts_its_filters_apart(corpus: Corpus,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Counting a search's facets live costs many times its list: the page comes with the filters
    uncounted and says where the counts are (htmx loads them into the page; without JavaScript, a link)."""
    from aggregator.web import reader

    page = lxml_html.fromstring(corpus.client.get("/?q=border").text)
    topics = page.cssselect("section[aria-labelledby=facet-topics] a")
    assert len(topics) == len(corpus.client.get("/api/v1/topics").json())
    assert not page.cssselect("#facets .n")
    [panel] = page.cssselect("#facets[hx-get]")
    assert panel.get("hx-get") == "/filters?q=border"
    assert links(corpus.client.get("/?q=border").text, "#facets a[hx-boost=false]") == ["/filters?q=border"]

    everything = lxml_html.fromstring(corpus.client.get("/filters?q=border").text)  # no JavaScript: a page
    found = len(ids(corpus.client.get("/api/v1/posts", params={"q": "border", "limit": 100}).json()))
    assert everything.cssselect("h1") and everything.cssselect("p.facet-count")[0].text_content().startswith(
        f"{found} posts")
    shown = {a.get("href"): int(a.cssselect(".n")[0].text_content())
             for a in everything.cssselect("section[aria-labelledby=facet-topics] a")}
    api = corpus.client.get("/api/v1/facets", params={"q": "border"}).json()["topic"]
    assert shown == {View({"q": ["border"]}).adding("topic", t["key"]): t["count"] for t in api}

    monkeypatch.setattr(reader, "FACET_SAMPLE", 3)
    fragment = corpus.client.get("/filters?q=border&sort=published", headers={"HX-Request": "true"})  # not cached
    sampled = lxml_html.fromstring(fragment.text)
    assert sampled.get("id") == "facets" and "<html" not in fragment.text
    assert sampled.cssselect("p.facet-count")[0].text_content().startswith("Counts of the newest 3 posts")
    counts = [int(n.text_content()) for n in sampled.cssselect("section[aria-labelledby=facet-topics] .n")]
    assert max(counts) <= 3


@pytest.mark.parametrize(("moment", "shown"), [
    (datetime(2026, 12, 5, 21, 4, tzinfo=UTC), "5 Dec 2026, 21:04 UTC"),
    (datetime(2026, 1, 1, 2, 30, tzinfo=timezone(timedelta(hours=5))), "31 Dec 2025, 21:30 UTC"),  # Tashkent
    (None, "-"),
])
def test_dates_are_written_in_utc_in_english(moment: datetime | None, shown: str) -> None:
    assert utc_text(moment) == shown


@pytest.mark.parametrize(("counts", "kinds"), [
    ({}, {}),
    ({"c:KZ": 12, "c:RU": 0, "t:terrorism": 5, "s:42": 7, "l:en": 9, "l:und": 3, "r:central-asia": 12},
     {"c": {"KZ": 12}, "t": {"terrorism": 5}, "s": {"42": 7}, "l": {"en": 9, "und": 3}, "r": {"central-asia": 12}}),
    ({"ct:KZ|terrorism": 2, "p:KZ": 4, "d:2026-12-01": 1}, {"ct": {"KZ|terrorism": 2}, "p": {"KZ": 4},
                                                           "d": {"2026-12-01": 1}}),
])
def test_facet_counts_are_split_by_kind_once_and_keep_their_total(counts: dict[str, int],
                                                                   kinds: dict[str, dict[str, int]]) -> None:
    """A page reads its lists, map, sources and total from one split of the counts: the positive
    ones, each under its kind with the code as it was, and the total the counts themselves give."""
    assert by_kind(counts) == kinds
    assert kinds_total(by_kind(counts)) == post_total(counts)  # type: ignore[arg-type]


def test_the_busiest_sources_are_named_from_a_kept_list_and_a_new_one_is_looked_up(db: Database) -> None:
    """Filter lists name their busiest sources from every source's name, read once a minute; a
    source added since is still named (looked up alone), a renamed one within the minute."""
    with db.connection() as conn:
        old, busy = (conn.execute("INSERT INTO sources (url, name, poll_interval) VALUES (%s, %s, 3600) RETURNING id",
                                  (f"https://{name}.example/feed", name)).fetchone()[0] for name in ("old", "busy"))
    counts = {str(old): 3, str(busy): 9}  # posts by source id (facets_db.by_kind's "s")
    names: TtlCache[dict[int, str]] = TtlCache(3600)
    with db.connection() as conn:
        assert busiest_sources(conn, counts, 5, names) == [(busy, 9, "busy"), (old, 3, "old")]
        new = conn.execute("INSERT INTO sources (url, name, poll_interval) VALUES ('https://new.example/f', 'new', 60) "
                           "RETURNING id").fetchone()[0]
        conn.execute("UPDATE sources SET name = 'renamed' WHERE id = %s", (old,))
        counts[str(new)] = 5
        assert busiest_sources(conn, counts, 2, names) == [(busy, 9, "busy"), (new, 5, "new")]
        assert busiest_sources(conn, counts, 3, names)[2] == (old, 3, "old")  # kept for the minute
        assert busiest_sources(conn, counts, 3, TtlCache(0))[2] == (old, 3, "renamed")
        assert busiest_sources(conn, counts, 3)[2] == (old, 3, "renamed")  # no list kept: all looked up
        tied = {str(busy): 9, str(new): 3, str(old): 3, "999999": 1}
        assert [i for i, _, _ in busiest_sources(conn, tied, 2, names)] == [busy, old]  # a tie: the older
        assert busiest_sources(conn, tied, 0, names) == []
