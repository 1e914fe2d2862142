"""HEAD wherever GET: uptime monitors and feed readers ask HEAD first, and FastAPI's routes take
only the methods they declare.

A HEAD request is routed as the GET it stands for, and the body of the answer is dropped on the
way out, so its status and headers (Content-Length, ETag, Last-Modified, Content-Encoding) are the
GET's exactly, as RFC 9110 §9.3.2 asks. Declaring HEAD on every route instead would double the
OpenAPI document. It sits outside the compression middleware, so the Content-Length it keeps is
the one of the body a GET would get.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] in ("http.response.body", "http.response.pathsend"):
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        # The app sees a copy that says GET; the server's own scope keeps saying HEAD (uvicorn reads
        # it as the body is sent, to know none is due). What the router learned is copied back, so
        # the middleware outside labels the latency metric with the route it matched.
        as_get = {**scope, "method": "GET"}
        try:
            await self.app(as_get, receive, headers_only)
        finally:
            for key in ("route", "endpoint", "path_params"):
                if key in as_get:
                    scope[key] = as_get[key]
