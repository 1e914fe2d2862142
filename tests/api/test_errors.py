"""Every way a request can be wrong gets the one error shape, a 4xx naming the parameter, never a 500."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from aggregator.db import Database
from aggregator.query import Cursor, encode_cursor
from aggregator.web.app import create_app
from tests.api.conftest import Corpus, TestClient, api_settings

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
    ("/api/v1/posts/abc", 422, "invalid_request", "post_id"),
    ("/api/v1/posts/0", 422, "invalid_request", "post_id"),
    ("/api/v1/posts/99999999999999999999", 422, "invalid_request", "post_id"),
    ("/api/v1/posts/987654", 404, "not_found", None),
    ("/api/v1/sources/abc", 422, "invalid_request", "source_id"),
    ("/api/v1/sources/987654", 404, "not_found", None),
    ("/api/v1/nothing-here", 404, "not_found", None),
    ("/api/v2/posts", 404, "not_found", None),
])
def test_bad_paths(corpus: Corpus, path: str, status: int, code: str, parameter: str | None) -> None:
    response = corpus.client.get(path)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    if parameter:
        assert error["details"]["parameter"] == parameter
        assert parameter in error["message"]


def test_wrong_method_is_a_405_in_the_same_shape(corpus: Corpus) -> None:
    response = corpus.client.put("/api/v1/posts")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_a_malformed_body_is_a_422_naming_the_field(corpus: Corpus) -> None:
    headers = {"X-API-Key": corpus.settings.admin_api_key.get_secret_value()}  # type: ignore[union-attr]
    response = corpus.client.post("/api/v1/sources", json={"url": 5}, headers=headers)
    assert response.status_code == 422
    assert response.json()["error"]["details"]["parameter"] == "url"
    broken = corpus.client.post("/api/v1/sources", content=b"{not json", headers={
        **headers, "Content-Type": "application/json"})
    assert broken.status_code == 422 and broken.json()["error"]["code"] == "invalid_request"


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
    with Database(unmigrated_database, max_size=2) as db, TestClient(create_app(settings, db)) as client:
        for path in ("/api/v1/posts", "/api/v1/facets", "/api/v1/topics", "/readyz"):
            response = client.get(path)
            assert response.status_code == 503, (path, response.text)
            assert response.json()["error"]["code"] == "unavailable"
            assert response.headers["retry-after"]
        assert client.get("/healthz").json() == {"status": "ok", "detail": None}
        metrics = client.get("/metrics")
        assert metrics.status_code == 200 and "aggregator_database_up 0.0" in metrics.text
