"""GET /api/v1/posts and /posts/{id} on posts ingested through the real pipeline.

Each filter is checked against an oracle: the stored rows read back and filtered in Python. A few
anchors (titles the fixture feeds were written to produce) keep the oracle itself honest.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from aggregator.db import post_filters as filters_db
from aggregator.query import PostFilter, PostQuery
from aggregator.web.rollup import refresh_once
from tests.api.conftest import Corpus, StoredPost, expected_facets, facets_of, ids

CA = {"KZ", "KG", "TJ", "TM", "UZ"}
SOUTH_CAUCASUS = {"AM", "AZ", "GE"}
NORTH_CAUCASUS = {"north-caucasus", "chechnya", "dagestan", "ingushetia", "kabardino-balkaria", "karachay-cherkessia",
                  "north-ossetia", "adygea"}
FERGANA = {"fergana-valley", "andijan", "namangan", "fergana", "osh", "jalal-abad", "batken", "sughd", "isfara"}
Oracle = Callable[[StoredPost, dict[str, int]], bool]

FILTERS: list[tuple[dict[str, object], Oracle]] = [
    ({}, lambda p, s: True),
    ({"country": "KZ"}, lambda p, s: "KZ" in p.countries),
    ({"country": "kz"}, lambda p, s: "KZ" in p.countries),
    ({"country": ["AF", "RU"]}, lambda p, s: bool({"AF", "RU"} & p.countries)),
    ({"country": "AF,PK", "match": "all"}, lambda p, s: {"AF", "PK"} <= p.countries),
    ({"country": "RU", "role": "primary"}, lambda p, s: "RU" in p.primary),
    ({"country": "AF", "role": "any"}, lambda p, s: "AF" in p.countries),
    ({"region": "central-asia"}, lambda p, s: bool(CA & p.countries)),
    ({"region": "central-asia", "role": "primary"}, lambda p, s: bool(CA & p.primary)),
    ({"region": ["central-asia", "south-caucasus"]}, lambda p, s: bool((CA | SOUTH_CAUCASUS) & p.countries)),
    ({"region": ["caucasus", "north-caucasus"], "match": "all"},
     lambda p, s: bool((SOUTH_CAUCASUS | {"RU"}) & p.countries) and bool(NORTH_CAUCASUS & p.places)),
    # a region that is part of a country means its places, not every post about the country
    ({"region": "north-caucasus"}, lambda p, s: bool(NORTH_CAUCASUS & p.places)),
    ({"region": ["north-caucasus", "central-asia"]}, lambda p, s: bool(NORTH_CAUCASUS & p.places or CA & p.countries)),
    ({"place": "dagestan"}, lambda p, s: "dagestan" in p.places),
    ({"place": "north-caucasus"}, lambda p, s: bool(NORTH_CAUCASUS & p.places)),
    ({"place": "fergana-valley"}, lambda p, s: bool(FERGANA & p.places)),
    ({"place": ["north-caucasus", "dagestan"], "match": "all"}, lambda p, s: "dagestan" in p.places),
    ({"topic": "terrorism"}, lambda p, s: "terrorism" in p.topics),
    ({"topic": ["terrorism", "border-security"]}, lambda p, s: bool({"terrorism", "border-security"} & p.topics)),
    ({"topic": ["crime-trafficking", "border-security"], "match": "all"},
     lambda p, s: {"crime-trafficking", "border-security"} <= p.topics),
    ({"country": "TJ", "topic": "border-security"}, lambda p, s: "TJ" in p.countries and "border-security" in p.topics),
    ({"country": "AF", "topic": "terrorism", "role": "primary"},
     lambda p, s: "AF" in p.primary and "terrorism" in p.topics),
    ({"source": "{kabul}"}, lambda p, s: s["/kabul-wire.rss"] in p.sources),
    ({"source": "{kabul},{steppe}"}, lambda p, s: bool({s["/kabul-wire.rss"], s["/steppe-watch.atom"]} & p.sources)),
    ({"source": "{steppe}", "country": "KZ"},
     lambda p, s: s["/steppe-watch.atom"] in p.sources and "KZ" in p.countries),
    ({"lang": "ru"}, lambda p, s: p.lang == "ru"),
    ({"lang": ["de", "RU"]}, lambda p, s: p.lang in ("de", "ru")),
    ({"since": "2025-01-10"}, lambda p, s: p.published >= datetime(2025, 1, 10, tzinfo=UTC)),
    ({"until": "2025-01-10"}, lambda p, s: p.published < datetime(2025, 1, 11, tzinfo=UTC)),
    ({"since": "2025-01-08T12:00:00Z", "until": "2025-01-12T15:00:00Z"},
     lambda p, s: datetime(2025, 1, 8, 12, tzinfo=UTC) <= p.published < datetime(2025, 1, 12, 15, tzinfo=UTC)),
    ({"since": "2025-01-08T17:00:00+05:00", "country": "AF", "topic": "border-security", "lang": "en"},
     lambda p, s: p.published >= datetime(2025, 1, 8, 12, tzinfo=UTC) and "AF" in p.countries
     and "border-security" in p.topics and p.lang == "en"),
]


def _params(params: dict[str, object], sources: dict[str, int]) -> dict[str, object]:
    def fill(value: object) -> object:
        if isinstance(value, str):
            return value.format(kabul=sources["/kabul-wire.rss"], steppe=sources["/steppe-watch.atom"])
        return value
    return {k: fill(v) for k, v in params.items()}


def fetch_all(corpus: Corpus, params: dict[str, object], limit: int) -> list[int]:
    """Walk every page with the cursor; also checks that no page is larger than asked."""
    seen: list[int] = []
    cursor = None
    while True:
        response = corpus.client.get("/api/v1/posts", params={**params, "limit": limit,
                                                              **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= limit
        seen.extend(ids(body))
        cursor = body["next_cursor"]
        if cursor is None:
            return seen


@pytest.mark.parametrize(("params", "oracle"), FILTERS, ids=[str(p) for p, _ in FILTERS])
def test_filter_matches_the_stored_tags(corpus: Corpus, params: dict[str, object], oracle: Oracle) -> None:
    posts = corpus.posts()
    expected = [p.id for p in posts if oracle(p, corpus.sources)]
    assert expected, "the fixture feeds should give every filter something to find"
    if params:
        assert len(expected) < len(posts), "a filter that keeps everything proves nothing"
    response = corpus.client.get("/api/v1/posts", params=_params(params, corpus.sources))
    assert response.status_code == 200, response.text
    assert ids(response.json()) == expected
    assert fetch_all(corpus, _params(params, corpus.sources), limit=2) == expected


def test_fixture_posts_are_tagged_as_written(corpus: Corpus) -> None:
    """Anchors for the oracle: the pipeline really tagged the fixture feeds the way they read."""
    recruiters = corpus.by_title("Islamic State recruiters")
    assert "KZ" in recruiters.primary and "terrorism" in recruiters.topics
    incursion = corpus.by_title("Tajik border guards")
    assert {"TJ", "AF"} <= incursion.countries and "border-security" in incursion.topics
    body = corpus.client.get("/api/v1/posts", params={"country": "KZ", "topic": "terrorism"}).json()
    assert recruiters.id in ids(body)
    assert incursion.id not in ids(body)


def test_items_carry_source_tags_and_dates(corpus: Corpus) -> None:
    post = corpus.by_title("Kyrgyz court jails")
    [item] = [i for i in corpus.client.get("/api/v1/posts", params={"country": "KG"}).json()["items"]
              if i["id"] == post.id]
    assert item["source"]["id"] == corpus.sources["/steppe-watch.atom"]
    assert item["source"]["name"] == "Steppe Watch"
    assert item["author"] == "Aidos Serikbayev"
    assert item["published"] == "2025-01-10T10:00:00Z"
    assert item["url"] == "https://steppe-watch.example/2025/01/kyrgyz-court-jails-journalists"
    assert "Bishkek" in item["summary"] and item["text"] is None
    kg = next(t for t in item["tags"] if t["code"] == "KG")
    assert (kg["kind"], kg["role"], kg["name"], kg["evidence"]) == ("country", "primary", "Kyrgyzstan", None)
    assert kg["score"] > 0
    assert any(t["kind"] == "topic" and t["code"] == "human-rights" and t["role"] is None for t in item["tags"])


def test_include_text_and_evidence(corpus: Corpus) -> None:
    item = corpus.client.get("/api/v1/posts", params={"country": "KZ", "topic": "terrorism",
                                                      "include": "text,evidence", "lang": "en"}).json()["items"][0]
    assert "National Security Committee" in item["text"]
    evidence = [e for t in item["tags"] for e in t["evidence"]]
    assert evidence and all({"field", "start", "end", "phrase", "rule", "weight"} <= e.keys() for e in evidence)
    kz = next(t for t in item["tags"] if t["code"] == "KZ")
    assert any(e["phrase"].lower().startswith("kazakh") for e in kz["evidence"])


@pytest.mark.parametrize(("q", "expected"), [
    ("opium", {"Taliban report record opium seizures in Helmand"}),
    ("hashish OR opium", {"Taliban report record opium seizures in Helmand",
                          "Drug smugglers intercepted on the Tajik-Afghan border"}),
    ('"suicide bombing"', {"ISKP claims a suicide bombing at a ministry in Kabul"}),
    ("seizures", {"Taliban report record opium seizures in Helmand"}),  # stemmed: seized / seizure
    ("Пяндж", {"Пограничники Таджикистана усилили охрану границы с Афганистаном"}),
    ("the", set()),  # only a stop word: nothing to search for, and no error
])
def test_full_text_search(corpus: Corpus, q: str, expected: set[str]) -> None:
    body = corpus.client.get("/api/v1/posts", params={"q": q}).json()
    titles = {p.id: p.title for p in corpus.posts()}
    assert {titles[i] for i in ids(body)} == expected


def test_full_text_phrase_and_exclusion(corpus: Corpus) -> None:
    def titles(q: str) -> set[str]:
        posts = {p.id: p.title for p in corpus.posts()}
        return {posts[i] for i in ids(corpus.client.get("/api/v1/posts", params={"q": q}).json())}

    with_guards = titles('"border guards"')
    assert "Tajik border guards repel an armed incursion from Afghanistan" in with_guards
    assert "Drug smugglers intercepted on the Tajik-Afghan border" in with_guards
    without_drugs = titles('"border guards" -hashish')
    assert without_drugs == with_guards - {"Drug smugglers intercepted on the Tajik-Afghan border"}


def test_relevance_puts_title_matches_first_and_pages_stably(corpus: Corpus) -> None:
    params = {"q": "border", "sort": "relevance"}
    first = corpus.client.get("/api/v1/posts", params=params).json()["items"]
    scores = [item["score"] for item in first]
    assert len(first) >= 4 and scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)
    assert "border" in first[0]["title"].lower()
    paged = fetch_all(corpus, params, limit=2)
    assert paged == [item["id"] for item in first]
    by_date = fetch_all(corpus, {"q": "border"}, limit=3)
    assert sorted(by_date) == sorted(paged) and by_date != paged


def test_one_post_with_text_html_tags_and_evidence(corpus: Corpus) -> None:
    post = corpus.by_title("Counter-terrorism operation in Dagestan")
    response = corpus.client.get(f"/api/v1/posts/{post.id}")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == post.id and "Makhachkala" in body["text"] and body["html"].startswith("<p>")
    assert body["sources"][0]["id"] == corpus.sources["/caucasus-monitor.rss"] == body["source"]["id"]
    assert body["taxonomy_version"]
    ru = next(t for t in body["tags"] if t["code"] == "RU")
    assert ru["role"] == "primary" and ru["evidence"]
    assert {t["code"] for t in body["tags"] if t["kind"] == "topic"} == set(post.topics)


def test_etag_answers_304_when_unchanged(corpus: Corpus) -> None:
    post_id = corpus.posts()[0].id
    first = corpus.client.get(f"/api/v1/posts/{post_id}")
    etag = first.headers["etag"]
    assert etag.startswith('W/"')
    again = corpus.client.get(f"/api/v1/posts/{post_id}", headers={"If-None-Match": etag})
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
    other = corpus.client.get(f"/api/v1/posts/{post_id}", headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200
    assert corpus.client.get(f"/api/v1/posts/{corpus.posts()[1].id}").headers["etag"] != etag


def test_gzip_and_cors(corpus: Corpus) -> None:
    response = corpus.client.get("/api/v1/posts", headers={"Accept-Encoding": "gzip",
                                                            "Origin": "https://analyst.example"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["access-control-allow-origin"] == "https://analyst.example"
    assert response.json()["items"]
    stranger = corpus.client.get("/api/v1/posts", headers={"Origin": "https://elsewhere.example"})
    assert "access-control-allow-origin" not in stranger.headers
    preflight = corpus.client.options("/api/v1/sources", headers={
        "Origin": "https://analyst.example", "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 400  # writes are not offered to browsers


FACET_CASES: list[tuple[dict[str, object], Callable[[StoredPost], bool]]] = [
    ({}, lambda p: True),
    ({"country": "TJ"}, lambda p: "TJ" in p.countries),
    ({"country": "AF", "role": "primary"}, lambda p: "AF" in p.primary),
    ({"topic": "border-security"}, lambda p: "border-security" in p.topics),
    ({"region": "central-asia"}, lambda p: bool(CA & p.countries)),
    ({"country": "TJ", "since": "2025-01-08T12:00:00Z", "until": "2025-01-16"},
     lambda p: "TJ" in p.countries and datetime(2025, 1, 8, 12, tzinfo=UTC) <= p.published
     < datetime(2025, 1, 17, tzinfo=UTC)),
    ({"topic": "terrorism", "since": "2024-12-15", "until": "2025-01-31"}, lambda p: "terrorism" in p.topics),
    ({"since": "2025-01-01", "until": "2025-01-31"}, lambda p: True),
    ({"since": "2025-02-01"}, lambda p: False),
    ({"q": "border"}, lambda p: False),  # the oracle for q is the API's own search (tested above)
]


@pytest.mark.parametrize("rollup", ["none", "current", "stale"])
@pytest.mark.parametrize(("params", "oracle"), FACET_CASES, ids=[str(p) for p, _ in FACET_CASES])
def test_facets_count_the_filtered_posts(corpus: Corpus, params: dict[str, object],
                                         oracle: Callable[[StoredPost], bool], rollup: str) -> None:
    """Exact whatever the rollup's state: none yet (all counted live), current, or stale (the
    month changed after its refresh: counted live, its rolled-up rows ignored)."""
    mark_dirty = "INSERT INTO facet_dirty_months SELECT DISTINCT facet_month(sort_at) FROM posts"
    with corpus.db.connection() as conn:
        conn.execute("DELETE FROM facet_months")
        conn.execute(mark_dirty)
    if rollup != "none":
        assert refresh_once(corpus.db) == 1  # the fixture posts all fall in January 2025
    if rollup == "stale":
        with corpus.db.connection() as conn:
            conn.execute(mark_dirty)
    posts = corpus.posts()
    if "q" in params:
        found = set(ids(corpus.client.get("/api/v1/posts", params={**params, "limit": 100}).json()))
        selected = [p for p in posts if p.id in found]
    else:
        selected = [p for p in posts if oracle(p)]
    assert facets_of(corpus, params) == expected_facets(selected)


def test_facet_lists_are_ordered_named_and_bounded(corpus: Corpus) -> None:
    body = corpus.client.get("/api/v1/facets", params={"region": "central-asia"}).json()
    counts = [v["count"] for v in body["country"]]
    assert counts == sorted(counts, reverse=True)
    assert [v["key"] for v in body["day"]] == sorted((v["key"] for v in body["day"]), reverse=True)
    steppe = next(v for v in body["source"] if int(v["key"]) == corpus.sources["/steppe-watch.atom"])
    assert steppe["name"] == "Steppe Watch"
    assert next(v for v in body["country"] if v["key"] == "TJ")["name"] == "Tajikistan"
    limited = corpus.client.get("/api/v1/facets", params={"region": "central-asia", "days": 2}).json()
    assert limited["day"] == body["day"][:2]


def test_taxonomy_lists_carry_post_counts(corpus: Corpus) -> None:
    posts = corpus.posts()
    countries = {c["code"]: c for c in corpus.client.get("/api/v1/countries").json()}
    assert countries["TJ"]["name"] == "Tajikistan"
    assert countries["TJ"]["posts"] == sum("TJ" in p.countries for p in posts)
    assert countries["TJ"]["primary_posts"] == sum("TJ" in p.primary for p in posts)
    assert countries["FR"]["posts"] == 0
    regions = {r["code"]: r for r in corpus.client.get("/api/v1/regions").json()}
    assert set(regions["central-asia"]["countries"]) == CA
    assert regions["central-asia"]["posts"] == sum(bool(CA & p.countries) for p in posts)
    topics = {t["code"]: t for t in corpus.client.get("/api/v1/topics").json()}
    assert topics["terrorism"]["posts"] == sum("terrorism" in p.topics for p in posts) > 0


@pytest.mark.parametrize("post_filter", [PostFilter(), PostFilter(q="border")])
def test_a_list_s_tags_are_the_tag_rows_it_shows(corpus: Corpus, post_filter: PostFilter) -> None:
    """What a page reads of each post's tags with its posts (primary countries, topics, places,
    strongest first) is what the tag rows say, in their order."""
    with corpus.db.read(statement_timeout=10) as conn:
        rows = filters_db.list_posts(conn, PostQuery(post_filter, limit=100), tags=True)
        tags = filters_db.tags_of(conn, [r.id for r in rows], evidence=False)
    assert rows and any(r.primary_tags for r in rows) and any(r.topic_tags for r in rows)
    for row in rows:
        mine = [t for t in tags if t.post_id == row.id]
        assert row.primary_tags == [t.code for t in mine if t.kind == "country" and t.role == "primary"], row.id
        assert row.topic_tags == [t.code for t in mine if t.kind == "topic"], row.id
        assert row.place_tags == [t.code for t in mine if t.kind == "place"], row.id
