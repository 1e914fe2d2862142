"""/api/v1/sources with health, admin-key protected changes, and the service endpoints."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from aggregator.config import Settings
from aggregator.db import Database
from aggregator.runtime import build_web_app
from tests.api.conftest import ADMIN_KEY, FEEDS, Corpus, TestClient, add_sources, poll, serve_fixtures
from tests.support.feedserver import FeedServer

KEY = {"X-API-Key": ADMIN_KEY}


@pytest.fixture
def live(db: Database, settings: Settings, feed_server: FeedServer) -> Iterator[Corpus]:
    settings = settings.model_copy(update={"admin_api_key": Settings(admin_api_key=ADMIN_KEY).admin_api_key,
                                           "api_counts_cache_seconds": 0.0})
    with TestClient(build_web_app(settings, db)) as client:
        yield Corpus(db, client, feed_server, settings, {})


def test_sources_list_health_after_polling(live: Corpus) -> None:
    serve_fixtures(live.server)
    live.server.html("/broken.rss")
    sources = add_sources(live.db, live.server, [*FEEDS, "/broken.rss"])
    poll(live.db, live.settings, [live.server.url(p) for p in FEEDS])
    with pytest.raises(AssertionError):  # the HTML page is recorded as a failed poll
        poll(live.db, live.settings, [live.server.url("/broken.rss")])
    listed = {s["id"]: s for s in live.client.get("/api/v1/sources").json()}
    kabul = listed[sources["/kabul-wire.rss"]]
    assert (kabul["name"], kabul["posts"], kabul["enabled"]) == ("Kabul Wire", 5, True)
    assert kabul["last_success"] and kabul["next_poll"] and kabul["last_error"] is None
    broken = listed[sources["/broken.rss"]]
    assert broken["last_error_kind"] and broken["consecutive_failures"] == 1 and broken["last_success"] is None
    assert live.client.get(f"/api/v1/sources/{sources['/kabul-wire.rss']}").json() == kabul


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"X-API-Key": ADMIN_KEY[:-1]},
                                     {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {ADMIN_KEY}"}])
def test_changes_without_the_admin_key_are_401(live: Corpus, headers: dict[str, str]) -> None:
    [source_id] = add_sources(live.db, live.server, ["/feed.xml"]).values()
    attempts = [
        live.client.post("/api/v1/sources", json={"url": "https://example.org/feed"}, headers=headers),
        live.client.patch(f"/api/v1/sources/{source_id}", json={"name": "x"}, headers=headers),
        live.client.delete(f"/api/v1/sources/{source_id}", headers=headers),
    ]
    for response in attempts:
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert [s["name"] for s in live.client.get("/api/v1/sources").json()] == [live.server.url("/feed.xml")]


def test_no_configured_key_refuses_every_change(db: Database, settings: Settings) -> None:
    with TestClient(build_web_app(settings.model_copy(update={"admin_api_key": None}), db)) as client:
        response = client.post("/api/v1/sources", json={"url": "https://example.org/feed"}, headers=KEY)
        assert response.status_code == 401


def test_add_edit_disable_and_delete_a_source(live: Corpus) -> None:
    created = live.client.post("/api/v1/sources", headers=KEY, json={
        "url": "https://example.org/feed", "name": "Example", "countries": ["kz"], "topics": ["Terrorism"]})
    assert created.status_code == 201, created.text
    source = created.json()
    assert (source["name"], source["default_countries"], source["default_topics"], source["origin"]) == (
        "Example", ["KZ"], ["terrorism"], "api")
    again = live.client.post("/api/v1/sources", json={"url": "https://example.org/feed"},
                             headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert again.status_code == 200 and again.json()["id"] == source["id"]
    path = f"/api/v1/sources/{source['id']}"
    renamed = live.client.patch(path, headers=KEY, json={"name": "Renamed", "topics": []}).json()
    assert (renamed["name"], renamed["default_countries"], renamed["default_topics"]) == ("Renamed", ["KZ"], [])
    disabled = live.client.patch(path, headers=KEY, json={"enabled": False}).json()
    assert (disabled["enabled"], disabled["next_poll"], disabled["name"]) == (False, None, "Renamed")
    still_disabled = live.client.patch(path, headers=KEY, json={"countries": ["UZ"]}).json()
    assert (still_disabled["enabled"], still_disabled["default_countries"]) == (False, ["UZ"])
    assert live.client.patch(path, headers=KEY, json={"enabled": True}).json()["enabled"] is True
    assert live.client.delete(path, headers=KEY).status_code == 204
    assert live.client.get(path).json()["enabled"] is False
    assert live.client.delete(path, headers=KEY, params={"purge": "true"}).status_code == 204
    assert live.client.get(path).status_code == 404
    assert live.client.delete(path, headers=KEY).status_code == 404
    assert live.client.patch(path, headers=KEY, json={"name": "x"}).status_code == 404


@pytest.mark.parametrize(("body", "parameter"), [
    ({"url": "ftp://example.org/feed"}, "url"),
    ({"url": "not a url"}, "url"),
    ({"url": "http://exa mple.org/"}, "url"),
    ({"url": "http://127.0.0.1:99999/"}, "url"),
    ({"url": "http://user:pass@example.org/x"}, "url"),
    ({"url": "http://example..org/feed"}, "url"),
    ({"url": "https://example.org/feed", "countries": ["XX"]}, "countries"),
    ({"url": "https://example.org/feed", "topics": ["gardening"]}, "topics"),
])
def test_bad_source_bodies_are_400(live: Corpus, body: dict[str, object], parameter: str) -> None:
    response = live.client.post("/api/v1/sources", json=body, headers=KEY)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"]["parameter"] == parameter
    assert "pass@" not in response.text
    assert live.client.get("/api/v1/sources").json() == []


def test_patch_checks_codes_against_the_taxonomy(live: Corpus) -> None:
    created = live.client.post("/api/v1/sources", headers=KEY, json={"url": "https://example.org/feed"}).json()
    path = f"/api/v1/sources/{created['id']}"
    response = live.client.patch(path, headers=KEY, json={"countries": ["KZ", "XX"]})
    assert response.status_code == 400 and response.json()["error"]["details"]["parameter"] == "countries"
    assert live.client.get(path).json()["default_countries"] == []


def test_service_endpoints(live: Corpus) -> None:
    assert live.client.get("/healthz").json()["status"] == "ok"
    assert live.client.get("/readyz").json()["status"] == "ready"
    serve_fixtures(live.server)
    add_sources(live.db, live.server, list(FEEDS))
    poll(live.db, live.settings, [live.server.url(p) for p in FEEDS])
    live.client.get("/api/v1/posts", params={"country": "KZ"})
    live.client.get("/api/v1/posts/1")
    text = live.client.get("/metrics").text

    def value(pattern: str) -> float:
        match = re.search(rf"^{pattern} (\S+)$", text, re.M)
        assert match, pattern
        return float(match.group(1))

    assert value(r'aggregator_fetches_last_hour\{outcome="ok"\}') == 4
    assert value("aggregator_posts_ingested_last_hour") == 21
    assert value(r'aggregator_sources\{state="ok"\}') == 4
    assert value("aggregator_poll_lag_seconds") == 0
    assert value(r'aggregator_http_request_duration_seconds_count\{method="GET",route="/api/v1/posts",'
                 r'status="200"\}') == 1
    assert value(r'aggregator_http_request_duration_seconds_count\{method="GET",route="/api/v1/posts/\{post_id\}",'
                 r'status="200"\}') == 1


def test_openapi_and_docs_are_served(live: Corpus) -> None:
    schema = live.client.get("/openapi.json").json()
    posts = schema["paths"]["/api/v1/posts"]["get"]
    assert {p["name"] for p in posts["parameters"]} >= {"country", "region", "topic", "role", "source", "q",
                                                        "since", "until", "lang", "match", "sort", "limit", "cursor"}
    assert "ErrorBody" in schema["components"]["schemas"]
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    assert "swagger" in live.client.get("/docs").text.lower()
