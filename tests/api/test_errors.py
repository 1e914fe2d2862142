"""Every way a request can be wrong gets the one error shape and the one status policy (400 for bad
input wherever it is, 404, 405, 413, 414, 415; never 422), a 4xx naming the parameter, never a 500."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from aggregator.db import Database
from aggregator.query import Cursor, encode_cursor
from aggregator.runtime import build_web_app
from tests.api.conftest import ADMIN_KEY, Corpus, TestClient, api_settings

BAD_QUERIES = [
    ("/api/v1/posts", {"country": "QQ"}, "country"),
    ("/api/v1/posts", {"country": "KZ,Narnia"}, "country"),
    ("/api/v1/posts", {"topic": "weather"}, "topic"),
    ("/api/v1/posts", {"region": "atlantis"}, "region"),
    ("/api/v1/posts", {"role": "main"}, "role"),
    ("/api/v1/posts", {"match": "most"}, "match"),
    ("/api/v1/posts", {"source": "first"}, "source"),
    ("/api/v1/posts", {"source": "-1"}, "source"),
    ("/api/v1/posts", {"lang": "english"}, "lang"),
    ("/api/v1/posts", {"since": "2025-02-30"}, "since"),
    ("/api/v1/posts", {"since": "last week"}, "since"),
    ("/api/v1/posts", {"until": "2025-01-01T25:00"}, "until"),
    ("/api/v1/posts", {"since": "2025-02-01", "until": "2025-01-01"}, "until"),
    ("/api/v1/posts", {"limit": "0"}, "limit"),
    ("/api/v1/posts", {"limit": "101"}, "limit"),
    ("/api/v1/posts", {"limit": "1e3"}, "limit"),
    ("/api/v1/posts", {"limit": ["5", "6"]}, "limit"),
    ("/api/v1/posts", {"sort": "oldest"}, "sort"),
    ("/api/v1/posts", {"sort": "relevance"}, "sort"),
    ("/api/v1/posts", {"cursor": "not-a-cursor"}, "cursor"),
    ("/api/v1/posts", {"cursor": base64.urlsafe_b64encode(b'["published","x",1]').decode()}, "cursor"),
    ("/api/v1/posts", {"cursor": encode_cursor(Cursor("relevance", datetime(2025, 1, 1, tzinfo=UTC), 3, 0.5))},
     "cursor"),
    ("/api/v1/posts", {"include": "html"}, "include"),
    ("/api/v1/posts", {"q": "x" * 257}, "q"),
    ("/api/v1/posts", {"q": "border\x00guards"}, "q"),
    ("/api/v1/posts", {"contry": "KZ"}, "contry"),
    ("/api/v1/facets", {"days": "0"}, "days"),
    ("/api/v1/facets", {"days": "400"}, "days"),
    ("/api/v1/facets", {"limit": "5"}, "limit"),
    ("/api/v1/facets", {"country": "XX"}, "country"),
]


@pytest.mark.parametrize(("path", "params", "parameter"), BAD_QUERIES,
                         ids=[f"{p} {q}"[:60] for p, q, _ in BAD_QUERIES])
def test_bad_parameter_is_a_400_naming_it(corpus: Corpus, path: str, params: dict[str, object],
                                          parameter: str) -> None:
    response = corpus.client.get(path, params=params)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_parameter"
    assert error["details"] == {"parameter": parameter}
    assert error["message"].startswith(f"{parameter}: ")


@pytest.mark.parametrize(("path", "status", "code", "parameter"), [
    ("/api/v1/posts/abc", 400, "invalid_parameter", "post_id"),
    ("/api/v1/posts/0", 400, "invalid_parameter", "post_id"),
    ("/api/v1/posts/99999999999999999999", 400, "invalid_parameter", "post_id"),
    ("/api/v1/posts/987654", 404, "not_found", None),
    ("/api/v1/sources/abc", 400, "invalid_parameter", "source_id"),
    ("/api/v1/sources/987654", 404, "not_found", None),
    ("/api/v1/nothing-here", 404, "not_found", None),
    ("/api/v2/posts", 404, "not_found", None),
])
def test_bad_paths(corpus: Corpus, path: str, status: int, code: str, parameter: str | None) -> None:
    """A malformed path parameter is bad input like a malformed query parameter: 400, never 422."""
    response = corpus.client.get(path)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    if parameter:
        assert error["details"]["parameter"] == parameter
        assert error["message"].startswith(f"{parameter}: ")


def test_wrong_method_is_a_405_in_the_same_shape(corpus: Corpus) -> None:
    response = corpus.client.put("/api/v1/posts")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert response.headers["allow"] == "GET, HEAD"


def test_a_malformed_body_is_a_400_naming_the_field(corpus: Corpus) -> None:
    headers = {"X-API-Key": corpus.settings.admin_api_key.get_secret_value()}  # type: ignore[union-attr]
    response = corpus.client.post("/api/v1/sources", json={"url": 5}, headers=headers)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_parameter" and error["details"]["parameter"] == "url"
    listed = corpus.client.post("/api/v1/sources", json=["not", "an", "object"], headers=headers)
    assert listed.status_code == 400 and listed.json()["error"]["details"]["parameter"] == "body"


@pytest.mark.parametrize("path", ["/api/v1/sources", "/api/v1/subscriptions", "/api/v1/saved-feeds"])
def test_broken_json_says_where_it_broke(corpus: Corpus, path: str) -> None:
    headers = {"X-API-Key": ADMIN_KEY, "Content-Type": "application/json"}
    response = corpus.client.post(path, content=b'{"url": nope}', headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == {
        "code": "invalid_json", "message": "body: not valid JSON (Expecting value at character 8)",
        "details": {"parameter": "body", "position": 8}}


@pytest.mark.parametrize(("path", "content_type", "body"), [
    ("/api/v1/subscriptions", "application/x-www-form-urlencoded", b"email=reader%40example.org"),
    ("/api/v1/subscriptions", "multipart/form-data; boundary=b",
     b'--b\r\nContent-Disposition: form-data; name="email"\r\n\r\nreader@example.org\r\n--b--\r\n'),
    ("/api/v1/subscriptions", "text/plain", b'{"email": "reader@example.org"}'),
    ("/api/v1/subscriptions", None, b'{"email": "reader@example.org"}'),
    ("/api/v1/sources", "text/plain", b'{"url": "https://feeds.example/a"}'),
    ("/subscribe", "application/json", b'{"email": "reader@example.org"}'),
    ("/subscribe", "multipart/form-data; boundary=b",
     b'--b\r\nContent-Disposition: form-data; name="email"\r\n\r\nreader@example.org\r\n--b--\r\n'),
])
def test_a_body_of_the_wrong_type_is_a_415(corpus: Corpus, path: str, content_type: str | None, body: bytes) -> None:
    """Not parsed as something else and blamed on a field (the form used to say the email lacked an @)."""
    headers = {"X-API-Key": ADMIN_KEY, **({"Content-Type": content_type} if content_type else {})}
    response = corpus.client.post(path, content=body, headers=headers)
    assert response.status_code == 415, response.text
    error = response.json()["error"]
    assert error["code"] == "unsupported_media_type" and "@" not in error["message"]


def test_no_answer_is_a_422_and_the_schema_says_so(corpus: Corpus) -> None:
    """One status policy, published: the OpenAPI document never mentions 422 or FastAPI's own
    validation-error shape, and every operation documents the 400 in the one error shape."""
    document = corpus.client.get("/openapi.json").json()
    text = json.dumps(document)
    assert '"422"' not in text and "HTTPValidationError" not in text
    assert "422 is never used" in document["info"]["description"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if operation.get("parameters") or "requestBody" in operation:
                assert "400" in operation["responses"], (method, path)


@pytest.mark.parametrize(("method", "path", "status", "message"), [
    ("GET", "/feeds/atom?country=QQ", 400, "country: unknown code 'QQ'"),
    ("GET", "/feeds/UPPER.atom", 400, "slug: String should match pattern"),
    ("GET", "/feeds/nothing-here.rss", 404, "saved feed not found"),
    ("GET", "/feeds/no/such/feed", 404, "Not Found"),
    ("POST", "/feeds/atom", 405, "Method Not Allowed"),
])
def test_feeds_answer_the_same_statuses_in_plain_text(corpus: Corpus, method: str, path: str, status: int,
                                                      message: str) -> None:
    """Whatever refused the request (the route, the router, FastAPI's checks), under /feeds/ the
    status is the API's and the message is text a feed reader can show."""
    response = corpus.client.request(method, path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text.startswith(message) and response.text.endswith("\n"), response.text


def test_a_refused_cors_preflight_has_the_error_shape(corpus: Corpus) -> None:
    response = corpus.client.options("/api/v1/posts", headers={
        "Origin": "https://elsewhere.example", "Access-Control-Request-Method": "GET"})
    assert response.status_code == 400
    assert response.json()["error"] == {"code": "bad_request", "message": "Disallowed CORS origin", "details": {}}
    allowed = corpus.client.options("/api/v1/posts", headers={
        "Origin": "https://analyst.example", "Access-Control-Request-Method": "HEAD"})
    assert allowed.status_code == 200 and "HEAD" in allowed.headers["access-control-allow-methods"]


@pytest.fixture
def unmigrated_database(database_url: str) -> Iterator[str]:
    """A real, reachable database without our schema: every query of the API fails inside PostgreSQL."""
    name = f"aggregator_empty_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield psycopg.conninfo.make_conninfo(database_url, dbname=name)
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_database_failure_is_a_503_and_not_ready(unmigrated_database: str, tmp_path: Path) -> None:
    settings = api_settings(unmigrated_database, tmp_path)
    with Database(unmigrated_database, max_size=2) as db, TestClient(build_web_app(settings, db)) as client:
        for path in ("/api/v1/posts", "/api/v1/facets", "/api/v1/topics", "/readyz"):
            response = client.get(path)
            assert response.status_code == 503, (path, response.text)
            assert response.json()["error"]["code"] == "unavailable"
            assert response.headers["retry-after"]
        assert client.get("/healthz").json() == {"status": "ok", "detail": None}
        metrics = client.get("/metrics")
        assert metrics.status_code == 200 and "aggregator_database_up 0.0" in metrics.text
