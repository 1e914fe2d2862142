"""HEAD wherever GET (aggregator.web.head), and headers said once (aggregator.web.security), on the
app with the fixture posts: every GET operation of the OpenAPI document, the feeds and the pages."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import anyio
import httpx
import pytest

from tests.api.conftest import ADMIN_KEY, Corpus

SLUG = "head-check"
NOT_IN_SCHEMA = ["/docs", "/docs/oauth2-redirect", "/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css",
                 "/openapi.json", "/subscribe", "/feeds/atom?country=KZ", "/feeds/rss?limit=2", "/feeds/json",
                 f"/feeds/{SLUG}.atom", f"/feeds/{SLUG}.json", "/feeds/saved.opml"]
ERRORS = ["/api/v1/posts?country=QQ", "/api/v1/posts/987654", "/api/v1/posts/abc", "/feeds/atom?country=QQ",
          "/feeds/nothing-here.rss", "/no/such/page", "/api/v1/subscriptions"]
VOLATILE = {"date", "server-timing"}  # and /metrics' body, which counts the requests themselves
LIST_HEADERS = {"vary", "allow", "cache-control", "access-control-expose-headers", "content-encoding"}


@pytest.fixture(scope="module")
def saved_feed(corpus: Corpus) -> Iterator[str]:
    created = corpus.client.post("/api/v1/saved-feeds", json={"slug": SLUG, "query": "country=KZ"},
                                 headers={"X-API-Key": ADMIN_KEY})
    assert created.status_code == 201, created.text
    yield SLUG
    corpus.client.delete(f"/api/v1/saved-feeds/{SLUG}", headers={"X-API-Key": ADMIN_KEY})


def get_paths(corpus: Corpus, slug: str) -> list[str]:
    """Every GET operation of the published schema, its path parameters filled with real values."""
    story = corpus.client.get("/api/v1/posts", params={"limit": 1}).json()["items"][0]["story_id"]
    values = {"post_id": str(corpus.posts()[0].id), "source_id": str(next(iter(corpus.sources.values()))),
              "slug": slug, "fmt": "rss", "story_id": str(story)}
    paths = []
    for template, item in corpus.client.get("/openapi.json").json()["paths"].items():
        if "get" in item:
            path = template
            for name, value in values.items():
                path = path.replace(f"{{{name}}}", value)
            assert "{" not in path, f"no value for a parameter of {template}"
            paths.append(path)
    return paths


def comparable(response: httpx.Response) -> dict[str, str]:
    headers = {k: v for k, v in response.headers.items() if k not in VOLATILE}
    if response.url.path == "/metrics":
        headers.pop("content-length")
    return headers


@pytest.mark.parametrize("encoding", ["gzip", "identity"])
def test_head_answers_wherever_get_does_with_its_headers_and_no_body(corpus: Corpus, saved_feed: str,
                                                                     encoding: str) -> None:
    paths = get_paths(corpus, saved_feed)
    assert {"/api/v1/posts", "/feeds/atom", "/healthz", "/metrics", f"/feeds/{saved_feed}.rss"} <= set(paths)
    headers = {"Accept-Encoding": encoding, "Origin": "https://analyst.example"}
    for path in paths + NOT_IN_SCHEMA + ERRORS:
        got = corpus.client.get(path, headers=headers)
        head = corpus.client.head(path, headers=headers)
        assert head.status_code == got.status_code, (path, head.status_code, got.status_code)
        assert comparable(head) == comparable(got), path
        assert head.content == b"", path
        if path not in ERRORS:
            assert got.status_code == 200 and got.content, path


def test_head_keeps_conditional_requests(corpus: Corpus) -> None:
    """A feed reader's HEAD with the ETag it has: 304, like its GET."""
    etag = corpus.client.get("/feeds/atom").headers["etag"]
    assert corpus.client.head("/feeds/atom", headers={"If-None-Match": etag}).status_code == 304


def test_no_answer_repeats_a_header_or_a_value(corpus: Corpus, saved_feed: str) -> None:
    """Feeds set Vary themselves and the compression and CORS middleware add to it: each header
    comes once, each value of a list header once (feeds sent `Vary: Accept-Encoding, Accept-Encoding, Origin`)."""
    answers = []
    for path in get_paths(corpus, saved_feed) + NOT_IN_SCHEMA + ERRORS:
        for encoding in ("gzip", "identity"):
            headers = {"Accept-Encoding": encoding, "Origin": "https://analyst.example"}
            answers += [corpus.client.get(path, headers=headers), corpus.client.head(path, headers=headers)]
    answers.append(corpus.client.put("/api/v1/posts"))
    feeds = [r for r in answers if r.url.path.startswith("/feeds/") and r.status_code == 200
             and not r.url.path.endswith(".opml")]
    assert {r.headers["vary"] for r in feeds} == {"Accept-Encoding, Origin"}
    for response in answers:
        names = [name.lower() for name, _ in response.headers.multi_items()]
        repeated = {name for name in names if names.count(name) > 1}
        assert not repeated, (response.request.method, response.url, repeated)
        for name in LIST_HEADERS & set(names):
            values = [v.strip().lower() for v in response.headers[name].split(",")]
            assert len(values) == len(set(values)), (response.url, name, response.headers[name])


def test_the_server_scope_of_a_head_request_says_head_while_the_body_is_sent(corpus: Corpus) -> None:
    """A server reads the method from its own scope as the body goes out (uvicorn refuses an empty
    body under a GET's Content-Length): only the app's copy may say GET. The route the router
    matched still reaches the scope of the middleware outside (the latency metric's label)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "HEAD",
             "scheme": "http", "path": "/healthz", "raw_path": b"/healthz", "root_path": "", "query_string": b"",
             "headers": [(b"host", b"test")], "client": ("127.0.0.1", 1), "server": ("test", 80)}
    seen: list[tuple[str, str, bytes]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        seen.append((str(message["type"]), scope["method"], message.get("body", b"")))  # type: ignore[arg-type]

    with ThreadPoolExecutor(1) as thread:  # a loop of its own: a browser test's may be running in this thread
        thread.submit(anyio.run, corpus.client.app, scope, receive, send).result()
    assert [(kind, method) for kind, method, _ in seen] == [("http.response.start", "HEAD"),
                                                            ("http.response.body", "HEAD")]
    assert seen[-1][2] == b""
    assert getattr(scope.get("route"), "path", None) == "/healthz"
