"""Regions in the reader: facet counts per region for the current filter, and region pages whose trend
is split by member places (a region that is part of a country) or countries, all from the facet
rollup, exact before and after a refresh, and kept right by `aggregator retag`."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime

import pytest
from lxml import html as lxml_html

from aggregator.config import Settings
from aggregator.db import Database
from aggregator.db import facets as facets_db
from aggregator.ingest.retag import retag
from aggregator.query import PostFilter
from aggregator.runtime import build_web_app
from aggregator.tagging import load_taxonomy
from aggregator.web.rollup import refresh_once
from tests.api.conftest import Corpus, TestClient, api_settings
from tests.api.conftest import corpus as corpus
from tests.support.database import fresh_database
from tests.support.feedserver import FeedServer
from tests.support.polling import serve_and_poll
from tests.web.conftest import admin_url


def region_facets(body: str) -> dict[str, tuple[int, str]]:
    """region code -> (count shown, link) of the Regions facet list."""
    found = {}
    for a in lxml_html.fromstring(body).cssselect("section[aria-labelledby=facet-regions] a"):
        href = a.get("href")
        count = a.cssselect(".n")
        found[a.cssselect(".name")[0].text_content()] = (int(count[0].text_content().replace(",", "")) if count
                                                           else -1, href)
    return found


def api_total(corpus: Corpus, params: dict[str, object]) -> int:
    facets = corpus.client.get("/api/v1/facets", params=params).json()
    return sum(v["count"] for v in facets["lang"])


@pytest.mark.parametrize("params", [{}, {"country": "RU"}, {"topic": "terrorism"}, {"q": "border"},
                                    {"region": "north-caucasus"}, {"country": "KZ", "topic": "terrorism"}])
def test_region_facets_count_what_adding_the_region_would_show(corpus: Corpus, params: dict[str, str]) -> None:
    page = corpus.client.get("/", params=params)
    assert page.status_code == 200
    panel = lxml_html.fromstring(page.text).cssselect("#facets[hx-get]")
    if panel:  # counted apart (a search, a combination): the counts htmx loads into the page
        page = corpus.client.get(panel[0].get("hx-get"), headers={"HX-Request": "true"})
        assert page.status_code == 200
    shown = region_facets(page.text)
    regions = corpus.client.app.state.api.taxonomy.regions
    names = {region.name: code for code, region in regions.items()}
    expected = {}
    for code in regions:
        # the posts of the view that are also the region's (match=all: a second region narrows)
        n = api_total(corpus, {**params, "region": sorted({params.get("region", code), code}), "match": "all"})
        if n or params.get("region") == code:
            expected[regions[code].name] = n
    assert {name: n for name, (n, _) in shown.items()} == expected
    for name, (_, href) in shown.items():  # a link adds the region (or, chosen, removes it)
        assert (f"region={names[name]}" in href) != (params.get("region") == names[name])
    if not params:
        assert shown["North Caucasus"][0] < shown["Caucasus"][0]  # its places, not all of Russia


def test_region_facets_come_from_the_rollup_once_it_is_refreshed(corpus: Corpus) -> None:
    """The same counts from the monthly rows as counted live, for no filter, a country and a region."""
    taxonomy = corpus.client.app.state.api.taxonomy
    refresh_once(corpus.db, facets_db.region_definitions(taxonomy))
    with corpus.db.connection() as conn:
        assert conn.execute("SELECT count(*) FROM facet_dirty_months").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM facet_months WHERE dim = 'r:north-caucasus'").fetchone()[0] > 0
        for f in (PostFilter(), PostFilter(countries=("RU",)), PostFilter(topics=("terrorism",))):
            assert facets_db.rollup_dim(f) is not None
            rolled = facets_db.counts(conn, f, days=1000, regions=True)
            live = facets_db._fetch(conn, *facets_db.live_sql(f, regions=True))
            assert any(k.startswith("r:") for k in live)
            assert {k: n for k, n in rolled.items() if k.startswith("r:")} == \
                {k: n for k, n in live.items() if k.startswith("r:")}
        pair = PostFilter(countries=("RU",), topics=("terrorism",))
        assert facets_db.rollup_dim(pair) == "ct:RU|terrorism"
        rolled = facets_db.counts(conn, pair, days=1000, regions=True)
        assert rolled["c:RU"] > 0 and rolled == facets_db._fetch(conn, *facets_db.live_sql(pair, regions=True))
    page = corpus.client.get("/regions/north-caucasus")
    assert "Chechnya" in page.text and "Dagestan" in page.text  # its places are listed


NC_LINES = [  # (title, text, the places the tagger should find)
    ("Clashes reported in Chechnya", "Security forces in Grozny, Chechnya, reported a shootout with militants."),
    ("Dagestan police detain suspects", "Police in Makhachkala, Dagestan, detained three suspects."),
    ("Counter-terrorism regime in Ingushetia", "A counter-terrorism regime was declared in Ingushetia."),
    ("Moscow court rules on fraud case", "A court in Moscow, Russia, sentenced a banker for fraud."),
]


def caucasus_feed(now: datetime) -> bytes:
    """Forty days of posts: the first three lines (North Caucasus places) and one about Moscow."""
    items = []
    for days_ago in range(40):
        title, text = NC_LINES[days_ago % len(NC_LINES)]
        when = (now - timedelta(days=days_ago)).replace(hour=10, minute=0, second=0, microsecond=0)
        link = f"https://caucasus.example/{days_ago}"
        items.append(f"<item><title>{title} ({days_ago})</title><link>{link}</link><guid>{link}</guid>"
                     f"<pubDate>{format_datetime(when)}</pubDate><description>{text}</description></item>")
    return ("<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>Caucasus Desk</title>"
            f"<link>https://caucasus.example/</link>{''.join(items)}</channel></rss>").encode()


@pytest.fixture(scope="module")
def recent(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Database, Settings]:
    with fresh_database(admin_url(database_url), prefix="aggregator_regions") as url:
        settings = api_settings(url, tmp_path_factory.mktemp("regions"), api_facets_refresh_seconds=0.0)
        with Database(url, max_size=4) as db, FeedServer() as feeds:
            build_web_app(settings, db)  # loads the taxonomy before the worker's threads want it
            outcomes = serve_and_poll(db, settings, feeds, {"/caucasus.rss": caucasus_feed(datetime.now(UTC))})
            assert all(o.outcome == "ok" for o in outcomes.values())
            yield db, settings


def region_posts(db: Database, places: list[str]) -> tuple[int, dict[str, int]]:
    """The oracle: posts naming any of these places, and per place, read from the posts."""
    with db.connection() as conn:
        total = conn.execute("SELECT count(*) FROM posts WHERE places && %(p)s::text[]", {"p": places}).fetchone()
        per = dict(conn.execute("SELECT pl, count(*) FROM posts, unnest(places) AS pl WHERE pl = ANY(%(p)s) "
                                "GROUP BY pl", {"p": places}).fetchall())
    return int(total[0]), per


def test_a_region_within_a_country_is_split_by_its_places(recent: tuple[Database, Settings]) -> None:
    db, settings = recent
    taxonomy = load_taxonomy(None)
    places = sorted(taxonomy.region_places["north-caucasus"])
    total, per = region_posts(db, places)
    assert total == 30 and set(per) >= {"chechnya", "dagestan", "ingushetia"}
    with TestClient(build_web_app(settings, db)) as client:
        live = client.get("/api/v1/trends", params={"region": "north-caucasus"}).json()
        refresh_once(db, facets_db.region_definitions(taxonomy))
        with db.connection() as conn:
            assert conn.execute("SELECT count(*) FROM facet_dirty_months").fetchone() == (0,)
            rolled = conn.execute("SELECT sum(posts) FROM facet_months WHERE dim = 'r:north-caucasus' "
                                  "AND month <> '-infinity' AND facet LIKE 'd:%%'").fetchone()
            split = conn.execute("SELECT count(*) FROM facet_months WHERE dim = 'xr:north-caucasus'").fetchone()
        assert split[0] > 0
        assert rolled == (total,)  # the rollup holds the region: the chart reads it, not the posts
        chart = client.get("/api/v1/trends", params={"region": "north-caucasus", "days": "91"}).json()
    assert sum(chart["total"]) == total == sum(live["total"])
    assert {s["key"]: sum(s["counts"]) for s in chart["series"]} == {k: n for k, n in per.items()}
    assert {s["name"] for s in chart["series"]} >= {"Chechnya", "Dagestan", "Ingushetia"}


def test_retag_brings_the_rollups_places_to_the_current_tags(recent: tuple[Database, Settings]) -> None:
    """Posts stored before places were tagged (the column empty): retag fills them, marks their months
    changed, and the next refresh rolls the region up from the new tags."""
    db, _ = recent
    taxonomy = load_taxonomy(None)
    places = sorted(taxonomy.region_places["north-caucasus"])
    total, _ = region_posts(db, places)
    with db.connection() as conn:
        conn.execute("UPDATE posts SET places = '{}', taxonomy_version = 'old'")
        conn.execute("DELETE FROM facet_regions")
    refresh_once(db)
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) FROM facet_months WHERE dim = 'r:north-caucasus'").fetchone() == (0,)
    assert retag(db) == 40
    with db.connection() as conn:  # retag wrote the taxonomy's regions and marked the months
        assert conn.execute("SELECT count(*) FROM facet_regions").fetchone()[0] == len(taxonomy.regions)
        assert conn.execute("SELECT count(*) FROM facet_dirty_months").fetchone()[0] > 0
    refresh_once(db)
    with db.connection() as conn:
        rolled = conn.execute("SELECT posts FROM facet_months WHERE dim = '' AND month = '-infinity' "
                              "AND facet = 'r:north-caucasus'").fetchone()
    assert rolled == (total,)


def test_changed_region_definitions_rebuild_the_rollup(recent: tuple[Database, Settings]) -> None:
    db, _ = recent
    definitions = facets_db.region_definitions(load_taxonomy(None))
    refresh_once(db, definitions)
    with db.connection() as conn:
        assert not facets_db.sync_regions(conn, definitions)  # the same: nothing to redo
        smaller = {**definitions, "north-caucasus": (["RU"], ["chechnya"])}
        assert facets_db.sync_regions(conn, smaller)
        assert conn.execute("SELECT count(*) FROM facet_dirty_months").fetchone()[0] > 0
    refresh_once(db)
    with db.connection() as conn:
        rolled = conn.execute("SELECT posts FROM facet_months WHERE dim = '' AND month = '-infinity' "
                              "AND facet = 'r:north-caucasus'").fetchone()
    assert rolled == (region_posts(db, ["chechnya"])[0],)
    refresh_once(db, definitions)


def test_region_pages_name_their_places_or_countries(corpus: Corpus) -> None:
    nc = lxml_html.fromstring(corpus.client.get("/regions/north-caucasus").text)
    text = nc.cssselect("main")[0].text_content()
    assert "Part of Russia" in text and "Chechnya" in text
    assert "/?place=chechnya" in [a.get("href") for a in nc.cssselect("main a")]
    ca = lxml_html.fromstring(corpus.client.get("/regions/central-asia").text)
    assert "Countries: " in ca.cssselect("main")[0].text_content()


def test_a_region_of_whole_countries_is_split_by_them(recent: tuple[Database, Settings]) -> None:
    """Its total counts each post once, however many of its countries the post names."""
    db, settings = recent
    members = sorted(load_taxonomy(None).regions["caucasus"].countries)
    with db.connection() as conn:
        total = conn.execute("SELECT count(*) FROM posts WHERE countries && %(m)s::text[]", {"m": members}).fetchone()
    with TestClient(build_web_app(settings, db)) as client:
        data = client.get("/api/v1/trends", params={"region": "caucasus"}).json()
    assert sum(data["total"]) == total[0] > 0
    assert {s["key"] for s in data["series"]} <= set(members) and data["series"]


@pytest.mark.parametrize(("f", "changed", "answers"), [
    (PostFilter(), 0, True),
    (PostFilter(countries=("KZ",)), facets_db.MAX_LIVE_MONTHS, True),
    (PostFilter(topics=("terrorism",)), facets_db.MAX_LIVE_MONTHS + 1, False),  # mostly being rebuilt
    (PostFilter(countries=("KZ",), topics=("terrorism",)), 0, True),  # the pair's own dimension
    (PostFilter(countries=("KZ",), topics=("terrorism",), role="primary"), 0, False),  # no dimension holds it
    (PostFilter(countries=("KZ", "RU"), topics=("terrorism",)), 0, False),
    (PostFilter(q="border"), 0, False),
])
def test_when_the_rollup_answers(f: PostFilter, changed: int, answers: bool) -> None:
    months = [date(2020 + i // 12, i % 12 + 1, 1) for i in range(changed)]
    assert facets_db.rollup_answers(f, months) is answers


def test_while_the_rollup_is_rebuilt_the_pages_show_samples(recent: tuple[Database, Settings],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A change of region definitions marks every month changed until the refresh has rebuilt them.
    Counting every post live on each request meanwhile timed out on a million posts (the page was
    a 503): instead the stream defers its counts, and the counts shown are the newest matches'."""
    from aggregator.web import reader

    db, settings = recent
    definitions = facets_db.region_definitions(load_taxonomy(None))
    with TestClient(build_web_app(settings, db)) as client:
        refresh_once(db, definitions)
        counted = lxml_html.fromstring(client.get("/").text)
        assert counted.cssselect("#facets .n") and not counted.cssselect("#facets[hx-get]")
        with db.connection() as conn:
            assert facets_db.sync_regions(conn, {**definitions, "north-caucasus": (["RU"], ["chechnya"])})
        # the few months of this database stand for the many of a large one
        monkeypatch.setattr(facets_db, "MAX_LIVE_MONTHS", 0)
        monkeypatch.setattr(reader, "FACET_SAMPLE", 3)
        stream = client.get("/?sort=published")  # an address not rendered before: not from the page cache
        page = lxml_html.fromstring(stream.text)
        assert stream.status_code == 200 and page.cssselect("main li")
        assert not page.cssselect("#facets .n")
        assert page.cssselect("#facets[hx-get]")[0].get("hx-get") == "/filters?sort=published"
        panel = lxml_html.fromstring(client.get("/filters?sort=published", headers={"HX-Request": "true"}).text)
        assert panel.cssselect("p.facet-count")[0].text_content().startswith("Counts of the newest 3 posts")
        country = client.get("/countries/RU?sort=published")
        assert country.status_code == 200 and "More than 3 posts" in country.text
        # Once rebuilt (which changes no post), the same addresses count again: nothing of the
        # rebuild's while was kept.
        monkeypatch.undo()
        changed = {**definitions, "north-caucasus": (["RU"], ["chechnya"])}
        refresh_once(db, changed)
        with db.connection() as conn:
            assert conn.execute("SELECT count(*) FROM facet_dirty_months").fetchone() == (0,)
        again = lxml_html.fromstring(client.get("/?sort=published").text)
        assert again.cssselect("#facets .n") and not again.cssselect("#facets[hx-get]")
        assert "More than 3 posts" not in client.get("/countries/RU?sort=published").text
        panel = lxml_html.fromstring(client.get("/filters?sort=published", headers={"HX-Request": "true"}).text)
        assert not panel.cssselect("p.facet-count") or \
            not panel.cssselect("p.facet-count")[0].text_content().startswith("Counts of the newest")
    refresh_once(db, definitions)


@pytest.mark.parametrize("f", [PostFilter(q="border"), PostFilter(countries=("KZ",), topics=("terrorism",)),
                               PostFilter(), PostFilter(regions=("central-asia",), langs=("en",))])
def test_a_sample_holding_every_match_counts_as_live_counting_does(corpus: Corpus, f: PostFilter) -> None:
    """The sampled counts (a search, a combination) are the live counts of the posts sampled: every
    kind of key, regions included, once per post."""
    with corpus.db.connection() as conn:
        live = facets_db._fetch(conn, *facets_db.live_sql(f, regions=True))
        sampled = facets_db.sampled(conn, f, newest=100_000)
    assert any(k.startswith("r:") for k in live) and any(k.startswith("s:") for k in live)
    assert sampled == {k: n for k, n in live.items() if not k.startswith("d:")}


def test_a_sample_counts_a_region_of_places_by_the_places_its_posts_name(recent: tuple[Database, Settings]) -> None:
    db, _ = recent
    with db.connection() as conn:
        sampled = facets_db.sampled(conn, PostFilter(countries=("RU",)), newest=100_000)
    total, _ = region_posts(db, ["chechnya", "dagestan", "ingushetia"])
    assert sampled["r:north-caucasus"] == total > 0


def test_a_search_takes_its_sample_from_the_newest_posts_index_as_from_the_archive(
        corpus: Corpus, monkeypatch: pytest.MonkeyPatch) -> None:
    """A search's newest matches found through recent_search (every post is in it here, as before a
    first prune) are the ones the archive's indexes give, with and without other filters, and so are
    their counts (the sources the recent rows carry are those post_sources links)."""
    with corpus.db.connection() as conn:
        rows = conn.execute("SELECT countries FROM posts p WHERE p.search @@ search_query('border')"
                            " ORDER BY sort_at DESC, id DESC").fetchall()
        country = sorted({c for r in rows[1:] for c in r[0]} - set(rows[0][0]))[0]  # not the newest match's: it counts
        statements: list[str] = []
        fetch = facets_db._fetch
        monkeypatch.setattr(facets_db, "_fetch", lambda c, s, p: statements.append(s.as_string(c)) or fetch(c, s, p))
        for f in (PostFilter(q="border"), PostFilter(q="border", countries=(country,)),
                  PostFilter(q="border OR security", langs=("en",))):
            condition, params = facets_db.where(f)
            matches = conn.execute(
                facets_db.sql.SQL("SELECT count(*) FROM posts p WHERE {}").format(condition), params).fetchone()[0]
            newest = matches if f.countries else matches - 1  # the newest posts fill it
            statements.clear()
            sampled = facets_db.sampled(conn, f, newest=newest)
            assert len(statements) == 1 and "recent_search" in statements[0], f
            archive = facets_db._regions_of_groups(fetch(conn, facets_db._SAMPLE.format(
                condition=condition, count=facets_db.sql.SQL(facets_db._COUNT_CHOSEN).format(
                    sources=facets_db._SOURCES_LINKED)), {**params, "newest": newest}))
            assert sampled == archive and sum(n for k, n in sampled.items() if k.startswith("l:")) == newest, f


REGION_ROWS = {"R:central-asia;KG,KZ,TJ,UZ;": 0, "R:fergana-valley;KG,TJ,UZ;osh,fergana": 0,
               "R:north-caucasus;RU;chechnya,dagestan": 0}


@pytest.mark.parametrize(("groups", "regions"), [
    ({"g:KZ;": 3}, {"r:central-asia": 3}),
    ({"g:KZ,UZ;": 2}, {"r:central-asia": 2}),  # two of its countries: its posts count once
    ({"g:KG;osh": 1, "g:UZ;": 4}, {"r:central-asia": 5, "r:fergana-valley": 1}),  # places, not countries
    ({"g:RU;": 7}, {}),  # Russia is not the North Caucasus: only its places are
    ({"g:RU;chechnya,dagestan": 2, "g:;dagestan": 1}, {"r:north-caucasus": 3}),
    ({"g:;": 5}, {}),
])
def test_sampled_regions_follow_the_rule_of_a_post(groups: dict[str, int], regions: dict[str, int]) -> None:
    found = Counter({"l:en": 9, "c:KZ": 3, **groups, **REGION_ROWS})
    assert facets_db._regions_of_groups(found) == {"l:en": 9, "c:KZ": 3, **regions}
