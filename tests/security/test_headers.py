"""Security headers (aggregator.web.security) and escaping on our HTML pages, against the real app.

Every route is found by walking the app's routes (a new page is covered the day it is added): each is
requested with placeholder path parameters, and every answer that is HTML must carry the strict
policy, every answer of any kind `nosniff` and a policy. The policies are then checked against what
the pages really contain: each inline <style> and <script> must be allowed by its hash, and nothing
else inline may be needed (the policy would break it). Values a person typed are sent back hostile
and must come out as the text they typed, the page's structure unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from aggregator.config import Settings
from aggregator.db import Database
from aggregator.digest.context import DigestContext
from aggregator.digest.links import CONFIRM_PATH, MANAGE_PATH, UNSUBSCRIBE_PATH
from aggregator.digest.subscribe import SubscriptionRequest, subscribe
from aggregator.runtime import build_web_app
from aggregator.web.security import API_POLICY
from tests.api.conftest import TestClient
from tests.digest.conftest import digest_settings
from tests.security.html_check import active_content, skeleton, text_and_attributes
from tests.support.database import reset

PAGE_ELEMENTS = frozenset({"form", "style", "meta"})  # our templates' own: checked against the policy here
EXPECTED_PAGES = {"/subscribe", f"{CONFIRM_PATH}{{token}}", f"{MANAGE_PATH}{{token}}", f"{UNSUBSCRIBE_PATH}{{token}}",
                  "/docs", "/docs/oauth2-redirect", "/", "/sources", "/countries/{code}"}
DOCS_PAGES = {"/docs", "/docs/oauth2-redirect"}
# The subscription pages run no script at all; the web reader's pages (every other page) load
# scripts from the site itself only (htmx, the chart), never inline.
SCRIPTLESS_PAGES = {"/subscribe", f"{CONFIRM_PATH}{{token}}", f"{MANAGE_PATH}{{token}}", f"{UNSUBSCRIBE_PATH}{{token}}"}
HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
_PARAMETER = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


@pytest.fixture
def dsettings(settings: Settings) -> Settings:
    return digest_settings(settings, None)  # no SMTP server: confirmations go to the Maildir


@pytest.fixture
def app(dsettings: Settings, db: Database) -> FastAPI:
    with db.connection() as conn:
        reset(conn, "digests")
    application = build_web_app(dsettings, db)

    def boom() -> None:
        raise RuntimeError("a bug")

    application.add_api_route("/test-only/boom", boom, include_in_schema=False)
    return application


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def policy(header: str | None) -> dict[str, list[str]]:
    assert header, "no Content-Security-Policy"
    directives = (part.split() for part in header.split(";") if part.strip())
    return {words[0].lower(): words[1:] for words in directives}


def sha256_source(text: str) -> str:
    return f"'sha256-{base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()}'"


class _Inline(HTMLParser):
    """Inline <script>/<style> texts, external script/stylesheet URLs, and attributes a policy governs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)  # element text is hashed exactly as sent
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.external: list[tuple[str, str]] = []  # (directive, url)
        self.style_attributes = 0
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.style_attributes += "style" in values
        if tag == "script" and values.get("src"):
            self.external.append(("script-src", values["src"] or ""))
        elif tag == "link" and values.get("rel") == "stylesheet":
            self.external.append(("style-src", values.get("href") or ""))
        elif tag in ("script", "style"):
            self._open = tag

    def handle_data(self, data: str) -> None:
        if self._open == "script":
            self.scripts.append(data)
        elif self._open == "style":
            self.styles.append(data)
        self._open = None

    def handle_endtag(self, tag: str) -> None:
        self._open = None


def concrete(path: str) -> str:
    return _PARAMETER.sub("1.x", path)


def html_answers(client: TestClient, app: FastAPI) -> dict[tuple[str, str], httpx.Response]:
    """Every route of the app, every method it takes, requested once: (method, route) -> response."""
    answers = {}
    for route in iter_route_contexts(app.routes):  # included routers' routes too
        if not route.path or route.path.startswith("/test-only/"):
            continue
        for method in sorted((route.methods or set()) - {"HEAD", "OPTIONS"}):
            answers[(method, route.path)] = client.request(method, concrete(route.path))
    assert len(answers) > 20, "the walk found the API's routes"
    return answers


def assert_page_headers(where: str, response: httpx.Response) -> None:
    headers = response.headers
    assert headers.get("x-content-type-options") == "nosniff", where
    assert headers.get("referrer-policy") == "no-referrer", where
    assert headers.get("x-frame-options") == "DENY", where
    rules = policy(headers.get("content-security-policy"))
    scripts = rules.get("script-src", rules.get("default-src", []))
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts, (where, rules)
    assert rules.get("default-src") == ["'none'"], (where, rules)
    assert rules.get("frame-ancestors") == ["'none'"] and rules.get("base-uri") == ["'none'"], (where, rules)
    assert rules.get("form-action") == ["'self'"], (where, rules)
    found = _Inline()
    found.feed(response.text)
    styles = rules.get("style-src", rules["default-src"])
    for text in found.scripts:
        assert sha256_source(text) in scripts, (where, "an inline script the policy would block")
    for directive, url in found.external:
        parts = urlsplit(url)
        source = f"{parts.scheme}://{parts.netloc}" if parts.netloc else "'self'"  # a path: this server
        assert source in rules.get(directive, []), (where, directive, url)
    if where not in DOCS_PAGES:  # Swagger UI alone needs inline styles (set by its bundle at run time)
        assert "'unsafe-inline'" not in " ".join(headers["content-security-policy"].split(";")), where
        assert found.style_attributes == 0, (where, "style attributes: the policy blocks them")
        assert not found.scripts, (where, "inline script")
        if where in SCRIPTLESS_PAGES or where.startswith(("/subscribe", "/subscriptions")):
            assert not [u for d, u in found.external if d == "script-src"], where
    for text in found.styles:
        assert sha256_source(text) in styles or "'unsafe-inline'" in styles, (where, "a <style> the policy blocks")


def test_every_html_route_sends_the_strict_policy(client: TestClient, app: FastAPI) -> None:
    answers = html_answers(client, app)
    pages = {path: r for (_, path), r in answers.items() if r.headers.get("content-type", "").startswith("text/html")}
    assert set(pages) >= EXPECTED_PAGES, sorted(pages)
    for path, response in pages.items():
        assert_page_headers(path, response)


def test_the_real_pages_behind_valid_links_fit_their_policy(client: TestClient, app: FastAPI,
                                                           dsettings: Settings, db: Database) -> None:
    ctx = DigestContext.create(dsettings, db)
    sub, _ = subscribe(ctx, SubscriptionRequest(email="reader@example.org", countries=["KZ"]))
    now = datetime.now(UTC)
    confirm = CONFIRM_PATH + ctx.links.token("confirm", sub.id, now)
    manage = MANAGE_PATH + ctx.links.token("manage", sub.id, now)
    unsubscribe = UNSUBSCRIBE_PATH + ctx.links.token("unsubscribe", sub.id, now)
    for method, path, page in (("GET", "/subscribe", "/subscribe"), ("GET", confirm, "confirm"),
                               ("POST", confirm, "confirmed"), ("GET", manage, "manage"),
                               ("POST", manage, "saved"), ("GET", unsubscribe, "unsubscribe"),
                               ("POST", unsubscribe, "unsubscribed")):
        response = client.request(method, path, data={"timezone": "UTC", "send_hour": "7", "format": "html"}
                                  if method == "POST" else None)
        assert response.status_code == 200, (page, response.text)
        assert_page_headers(page, response)
        if page == "manage":
            assert 'class="apart"' in response.text, "the unsubscribe form is the page's second form"


def test_docs_allow_exactly_fastapis_inline_script(app: FastAPI) -> None:
    for root in ("", "/behind-a-proxy"):
        with TestClient(app, root_path=root) as client:
            for path in sorted(DOCS_PAGES):
                response = client.get(path)
                assert response.status_code == 200
                assert_page_headers(path, response)
                rules = policy(response.headers["content-security-policy"])
                found = _Inline()
                found.feed(response.text)
                assert found.scripts and [sha256_source(s) for s in found.scripts] == \
                    [s for s in rules["script-src"] if s.startswith("'sha256-")]
                assert path != "/docs" or f"'{root}/openapi.json'" in response.text, "the script differs per root path"


def test_every_answer_is_nosniff_and_has_a_policy(client: TestClient, app: FastAPI) -> None:
    answers = list(html_answers(client, app).values())
    errors = {
        404: client.get("/no/such/page"),
        405: client.put("/api/v1/posts"),
        400: client.get("/api/v1/posts", params={"country": "QQ"}),
        401: client.post("/api/v1/sources", json={}),
        413: client.post("/api/v1/subscriptions", json={"email": "x" * 70_000}),
        414: client.get("/api/v1/posts", params={"q": "x" * 9_000}),
        415: client.post("/subscribe", json={"email": "reader@example.org"}),
        500: client.get("/test-only/boom"),
    }
    for status, response in errors.items():
        assert response.status_code == status, (status, response.text)
    feed_error = client.get("/feeds/atom", params={"country": "QQ"})
    assert feed_error.status_code == 400 and feed_error.headers["content-type"].startswith("text/plain")
    big = client.get("/openapi.json", headers={"Accept-Encoding": "gzip"})
    assert big.headers.get("content-encoding") == "gzip"
    statuses = set()
    for response in [*answers, *errors.values(), feed_error, big]:
        statuses.add(response.status_code)
        assert response.headers.get("x-content-type-options") == "nosniff", (response.url, response.status_code)
        if not response.headers.get("content-type", "").startswith("text/html"):
            assert response.headers.get("content-security-policy") == API_POLICY, response.url
    assert {200, 400, 401, 404, 405, 413, 414, 415, 500} <= statuses


def test_an_unhandled_error_keeps_the_error_body(client: TestClient) -> None:
    response = client.get("/test-only/boom")
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "internal_error", "message": "internal error", "details": {}}}


def form_field(document: str, name: str) -> str | None:
    """The value a browser would show in the named input, decoded."""
    values: dict[str, str | None] = {}

    class _Inputs(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found = dict(attrs)
            if tag == "input" and found.get("name") == name and found.get("type") != "checkbox":
                values[name] = found.get("value")

    _Inputs(convert_charrefs=True).feed(document)
    return values.get(name)


def test_typed_values_come_back_escaped_on_the_subscribe_form(client: TestClient) -> None:
    benign = {"email": "not-an-address", "q": "border", "timezone": "Not/AZone", "country_other": "ZZ",
              "format": "html", "send_hour": "8"}
    baseline = client.post("/subscribe", data=benign)
    assert baseline.status_code == 400
    cases = [  # each is refused for a different field, whose error message may quote the value
        {**benign, "email": f"x{HOSTILE}", "q": f"q{HOSTILE}", "country_other": f"c{HOSTILE}",
         "timezone": f"t{HOSTILE}", "format": f"f{HOSTILE}"},
        {**benign, "email": "reader@example.org", "country_other": "", "timezone": f"Asia/{HOSTILE}"},
        {**benign, "email": "reader@example.org", "timezone": "UTC", "country_other": f"K{HOSTILE}"},
    ]
    for sent in cases:
        response = client.post("/subscribe", data=sent)
        assert response.status_code == 400, response.text
        assert_page_headers("/subscribe (400)", response)
        assert skeleton(response.text) == skeleton(baseline.text), "a typed value changed the page's structure"
        assert active_content(response.text, own_elements=PAGE_ELEMENTS) == []
        for name in ("email", "q", "country_other"):
            assert form_field(response.text, name) == sent[name].strip(), name
        errors = re.findall(r'<p class="error">(.*?)</p>', response.text, re.DOTALL)
        assert len(errors) == 1 and "<" not in errors[0], errors
        if sent is not cases[0]:
            assert "<script>" in html.unescape(errors[0]), "the refused value is quoted, as text"


def test_values_on_link_pages_come_back_escaped(client: TestClient, dsettings: Settings, db: Database) -> None:
    email = "o'neil&co{x}|`~@example.org"  # what an address may hold that HTML cares about
    words = f'"{HOSTILE}" OR border'
    accepted = client.post("/subscribe", data={"email": email, "q": words, "timezone": "UTC", "send_hour": "8",
                                                "format": "html"})
    assert accepted.status_code == 200, accepted.text
    assert email in text_and_attributes(accepted.text)[0]
    ctx = DigestContext.create(dsettings, db)
    sub, _ = subscribe(ctx, SubscriptionRequest(email=email, q=words))
    now = datetime.now(UTC)
    pages = [
        ("GET", CONFIRM_PATH + ctx.links.token("confirm", sub.id, now), {}),
        ("POST", CONFIRM_PATH + ctx.links.token("confirm", sub.id, now), {}),
        ("GET", MANAGE_PATH + ctx.links.token("manage", sub.id, now), {}),
        ("POST", MANAGE_PATH + ctx.links.token("manage", sub.id, now), {"timezone": f"Asia/{HOSTILE}"}),
        ("GET", UNSUBSCRIBE_PATH + ctx.links.token("unsubscribe", sub.id, now), {}),
    ]
    shown = []
    for method, path, form in pages:
        response = client.request(method, path, data=form or None)
        assert response.status_code in (200, 400), response.text
        assert_page_headers(path, response)
        assert active_content(response.text, own_elements=PAGE_ELEMENTS) == [], path
        shown.append(text_and_attributes(response.text)[0])
    assert all(email in text for text in shown[:3] + shown[4:]), "the address, as typed"
    assert all(HOSTILE in text for text in shown[:3] + shown[4:]), "the filter's words, as typed"
    assert HOSTILE in shown[3], "the rejected zone, named in the error as typed"


class _References(HTMLParser):
    """Every URL an HTML page would load or send to: src, href, action and the like, and url() in
    its styles."""

    ATTRIBUTES = frozenset({"src", "href", "action", "formaction", "poster", "srcset", "data", "background"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self._style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and name in self.ATTRIBUTES:
                self.urls += [part.split()[0] for part in value.split(",") if part.strip()] if name == "srcset" \
                    else [value]
            elif value and name == "style":
                self.urls += css_urls(value)
            elif value and name == "content" and ("http-equiv", "refresh") in attrs:
                self.urls.append(value.partition("url=")[2])
        self._style = tag == "style"

    def handle_data(self, data: str) -> None:
        if self._style:
            self.urls += css_urls(data)

    def handle_endtag(self, tag: str) -> None:
        self._style = False


_CSS_URL = re.compile(r"""url\(\s*(['"]?)(.*?)\1\s*\)|@import\s+(['"])(.*?)\3""", re.IGNORECASE | re.DOTALL)


def css_urls(text: str) -> list[str]:
    return [m.group(2) or m.group(4) or "" for m in _CSS_URL.finditer(text)]


def json_references(document: object) -> list[str]:
    """The URLs an OpenAPI document points its reader at (not the example values it holds)."""
    found: list[str] = []
    if isinstance(document, dict):
        for key, value in document.items():
            if key in ("$ref", "url", "externalValue", "operationRef", "termsOfService") and isinstance(value, str):
                found.append(value)
            elif key != "example" and key != "examples":
                found += json_references(value)
    elif isinstance(document, list):
        for value in document:
            found += json_references(value)
    return found


def elsewhere(url: str) -> bool:
    """A URL on another host: absolute with a host, or scheme-relative (//host/...). data: stays here."""
    parts = urlsplit(url.strip())
    return bool(parts.netloc) and parts.netloc != "testserver"


def test_no_page_of_the_service_loads_anything_from_another_host(client: TestClient, app: FastAPI) -> None:
    """/docs used to load Swagger UI from a CDN and was blank without internet. Every page, the
    files it loads (followed to the end: CSS can load more) and the OpenAPI document name this
    server alone; the docs page also turns off Swagger UI's validator badge (an image from swagger.io)."""
    pages = [path for (method, path), r in html_answers(client, app).items()
             if method == "GET" and r.headers.get("content-type", "").startswith("text/html")]
    assert {"/docs", "/subscribe"} <= set(pages)
    seen: set[str] = set()
    queue = [concrete(p) for p in pages]
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        response = client.get(path)
        # 400: a placeholder token; 404: a placeholder id or code (the reader's 404 page is checked too)
        assert response.status_code in (200, 400, 404), (path, response.status_code)
        content_type = response.headers["content-type"]
        if content_type.startswith("text/html"):
            found = _References()
            found.feed(response.text)
            urls = found.urls
        elif content_type.startswith("text/css"):
            urls = css_urls(response.text)
        else:
            continue
        assert [u for u in urls if elsewhere(u)] == [], path
        queue += [urlsplit(u).path for u in urls if u and not u.startswith(("data:", "#")) and not elsewhere(u)]
    loaded = {p for p in seen if p.startswith("/docs/assets/")}
    assert {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/docs/assets/favicon.png"} <= loaded
    assert all(client.get(p).status_code == 200 for p in loaded)
    assert '"validatorUrl": null' in client.get("/docs").text
    document = client.get("/openapi.json").json()
    references = json_references(document)
    assert references and [u for u in references if elsewhere(u)] == []
    assert "servers" not in document or all(not elsewhere(s["url"]) for s in document["servers"])
