"""What a request may be before any route reads it, as pure ASGI middleware (no task per request):

    URL (path + query) over MAX_URL_BYTES          414 uri_too_long
    Content-Length over HTTP_MAX_BODY_BYTES        413 too_large, answered before the app runs or reads a byte
    a streamed (chunked) body that grows past it   413 too_large, as soon as the app has read one byte too many;
                                                   the server drops the rest as it arrives, never holding it
    a form route sent anything but a form          415 unsupported_media_type (require_form, called by the route)
    a CORS preflight from an origin, for a method  400 bad_request (Cors: Starlette's CORS middleware, its
    or with headers not allowed                    refusal in the app's shape instead of plain text)

A request with neither Content-Length nor Transfer-Encoding has no body in HTTP/1.1, and one with a
Content-Length within the limit cannot send more: both go through untouched, at no cost.

Errors have the app's shape (aggregator.web.errors): JSON, or plain text under /feeds/.

The server itself refuses a request head (request line and headers) longer than its parser takes,
80 KB with httptools (uvicorn's default parser), with its own plain-text 400 before the app sees
anything; MAX_URL_BYTES is far below that, so every URL the server accepts gets this app's answer.

FastAPI's own `max_body_size` is not used: over the limit on Content-Length it lets the route run
and then swaps its response for a plain-text 413 sent from outside the app's middleware (without
the security headers), where this refuses first and answers in the API's shape.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aggregator.web import errors

MAX_URL_BYTES = 8 * 1024  # path and query: what common proxies accept (nginx's 8k header buffers)
FORM_TYPE = "application/x-www-form-urlencoded"


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a streamed body passes the limit. An HTTPException, so FastAPI's
    body reading passes it on as it is and the app's handler answers it, like any other 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


class RequestLimits:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_url_bytes: int = MAX_URL_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_url_bytes = max_url_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _url_bytes(scope) > self.max_url_bytes:
            message = f"the URL is longer than {self.max_url_bytes} bytes"
            await errors.for_scope(scope, errors.error_response(414, "uri_too_long", message))(scope, receive, send)
            return
        length, streamed = _body_framing(scope)
        if length is not None and length > self.max_body_bytes:
            await self._too_large(scope, receive, send)
            return
        if not streamed:  # no body, or one within the limit by its Content-Length: nothing to count
            await self.app(scope, receive, send)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, send_tracked)
        except BodyTooLarge:  # read outside the app's handlers (none today): still answered, if not begun
            if started:
                raise
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        exc = BodyTooLarge(self.max_body_bytes)
        await errors.for_scope(scope, errors.to_response(exc))(scope, receive, send)


def _url_bytes(scope: Scope) -> int:
    """Length of the request target as sent: path, and "?" plus query when there is one."""
    query = scope.get("query_string", b"")
    return len(scope.get("raw_path") or scope["path"].encode()) + (len(query) + 1 if query else 0)


def _body_framing(scope: Scope) -> tuple[int | None, bool]:
    """(Content-Length, whether the body streams without one). A malformed Content-Length never
    gets here: the server refuses it. HTTP/1.1 has no other way to send a body."""
    length, streamed = None, False
    for name, value in scope["headers"]:
        if name == b"content-length":
            length = int(value) if value.isdigit() else None
        elif name == b"transfer-encoding":
            streamed = True
    return length, streamed or (length is None and scope.get("http_version") == "2")


def require_form(request: Request) -> None:
    """For routes that read an HTML form: a body of another type (JSON, multipart) is refused as
    such, not parsed as an empty form and blamed on its first missing field. No body at all is an
    empty form."""
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type == FORM_TYPE or (not content_type and request.headers.get("content-length", "0") == "0"
                                     and "transfer-encoding" not in request.headers):
        return
    raise HTTPException(415, f"this form takes {FORM_TYPE}, not {content_type or 'a body without Content-Type'}")


class Cors(CORSMiddleware):
    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        headers = {k: v for k, v in response.headers.items() if k not in ("content-length", "content-type")}
        return errors.error_response(400, "bad_request", bytes(response.body).decode(), headers=headers)
