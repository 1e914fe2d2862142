"""Security headers on every response, as pure ASGI middleware (it wraps `send`; the API is benchmarked
and a BaseHTTPMiddleware would cost a task and a queue per request).

    every response     X-Content-Type-Options: nosniff
                       Content-Security-Policy: default-src 'none'; frame-ancestors 'none'
                       (JSON, feeds, plain text: nothing in them may load or run anything)
    our HTML pages     a policy with no script at all, the pages' own <style> allowed by its sha256
                       hash (read from the templates at startup), forms posting only to us, no framing,
                       no <base>; plus Referrer-Policy: no-referrer and X-Frame-Options: DENY
    /docs              Swagger UI: its files from this server (served from the package, so the page
                       works without internet and names no other host), and its one inline script by
                       the hash of exactly what the docs route emits (computed from that route, never
                       from the response being sent, so a script that got into a response could not
                       allow itself); inline styles are allowed there only, as Swagger UI sets them
                       from its bundle

Repeated values of Vary (the feeds set it, the compression and CORS middleware add to it) are
merged into one header naming each value once.

A route that sets its own Content-Security-Policy keeps it. A 500 raised past the app's handlers
is answered here (FastAPI sends those from outside every middleware, where no header could be
added), with the same body the error handler gives; the exception still propagates to be logged.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aggregator.digest import render
from aggregator.web.errors import error_response, for_scope, route_path

API_POLICY = "default-src 'none'; frame-ancestors 'none'"
PAGE_TEMPLATES = "web/"

_INLINE = {tag: re.compile(rf"<{tag}(\s[^>]*)?>(.*?)</{tag}\s*>", re.IGNORECASE | re.DOTALL)
           for tag in ("script", "style")}
_COMMON: list[tuple[bytes, bytes]] = [(b"x-content-type-options", b"nosniff")]
_HTML_ONLY: list[tuple[bytes, bytes]] = [(b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]


def hash_source(text: str) -> str:
    """A CSP hash source: the browser hashes the element's text exactly as sent (UTF-8)."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def inline_blocks(tag: str, document: str) -> list[str]:
    """Contents of the inline <script> or <style> elements of a document (not those with a src)."""
    return [m.group(2) for m in _INLINE[tag].finditer(document) if "src=" not in (m.group(1) or "").lower()]


def page_styles() -> list[str]:
    """The <style> elements of our page templates. They hold no template syntax, so their text is what
    every page sends; the tests compare it with what pages really send."""
    env = render.environment()
    loader = env.loader
    if loader is None:
        return []
    names = env.list_templates(filter_func=lambda name: name.startswith(PAGE_TEMPLATES))
    sources = (loader.get_source(env, name)[0] for name in names)
    return sorted({block for source in sources for block in inline_blocks("style", source)})


def page_policy(styles: Iterable[str]) -> str:
    hashes = " ".join(hash_source(s) for s in styles) or "'none'"
    return (f"default-src 'none'; style-src {hashes}; form-action 'self'; frame-ancestors 'none'; "
            "base-uri 'none'")


def docs_policy(document: str) -> str:
    """The policy of a Swagger UI page (or its OAuth2 redirect page), from the HTML its route emits."""
    scripts = " ".join(hash_source(s) for s in inline_blocks("script", document))
    return (f"default-src 'none'; script-src 'self' {scripts}; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


DocsPage = Callable[..., Awaitable[Any]]  # takes the request, or nothing


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, site: FastAPI, docs: Iterable[str]) -> None:
        """`docs`: the paths of the Swagger UI pages of `site`."""
        self.app = app
        pages = set(docs)
        self.docs_pages: dict[str, DocsPage] = {route.path: route.endpoint for route in site.routes
                                                if isinstance(route, Route) and route.path in pages}
        self.page_policy = page_policy(page_styles()).encode("ascii")
        self._docs: dict[tuple[str, str], bytes] = {}  # (path, root path) -> policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = await self._headers(scope, message.get("headers") or [])
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            if not started:
                response = for_scope(scope, error_response(500, "internal_error", "internal error"))
                await response(scope, receive, send_with_headers)
            raise

    async def _headers(self, scope: Scope, raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        headers = merge_vary(raw)
        names = {name.lower() for name, _ in headers}
        content_type = next((value for name, value in headers if name.lower() == b"content-type"), b"")
        extra = list(_COMMON)
        if content_type.lower().startswith(b"text/html"):
            extra += _HTML_ONLY
            extra.append((b"content-security-policy", await self._html_policy(scope)))
        else:
            extra.append((b"content-security-policy", API_POLICY.encode("ascii")))
        headers += [(name, value) for name, value in extra if name not in names]
        return headers

    async def _html_policy(self, scope: Scope) -> bytes:
        root = scope.get("root_path", "")
        path = route_path(scope["path"], root)
        page = self.docs_pages.get(path)
        if page is None:
            return self.page_policy
        if (path, root) not in self._docs:
            self._docs[path, root] = docs_policy(await _render(page, path, root)).encode("ascii")
        return self._docs[path, root]


def merge_vary(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The headers with every Vary merged into one, each value named once (in first-seen order)."""
    headers = list(raw)
    values = [value for name, value in headers if name.lower() == b"vary"]
    if not values:
        return headers
    merged: dict[bytes, bytes] = {}
    for value in values:
        for token in value.split(b","):
            if token.strip():
                merged.setdefault(token.strip().lower(), token.strip())
    rest = [(name, value) for name, value in headers if name.lower() != b"vary"]
    return [*rest, (b"vary", b", ".join(merged.values()))]


async def _render(page: DocsPage, path: str, root_path: str) -> str:
    """What a docs page sends to a plain GET under this root path: it takes nothing else from a request."""
    request = Request({"type": "http", "method": "GET", "path": root_path + path, "root_path": root_path,
                       "query_string": b"", "headers": []})
    response = await (page(request) if inspect.signature(page).parameters else page())  # type: ignore[call-arg]
    return bytes(response.body).decode("utf-8")
