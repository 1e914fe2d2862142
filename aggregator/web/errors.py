"""The one place where errors become HTTP responses, all in one JSON shape:

    {"error": {"code": "invalid_parameter", "message": "country: unknown country code 'QQ'",
               "details": {"parameter": "country"}}}

    InvalidInputError        400 invalid_parameter   our parsers: details.parameter names it
    RequestValidationError   400 invalid_parameter   FastAPI's checks of path, query and body fields: the same
                                                     status and code (details.errors lists every problem)
                             400 invalid_json        a body that is not JSON (details.position: where it broke)
                             415 unsupported_media_type   a body that is not sent as JSON at all
    NotFoundError            404 not_found
    RateLimitError           429 too_many_requests   (with Retry-After)
    StorageError             503 unavailable         (database down, statement timeout, old schema)
    HTTPException            its status              401 unauthorized, 404 unknown route, 405 (Allow names
                                                     HEAD wherever GET), 413 too_large, 414 uri_too_long,
                                                     415 unsupported_media_type (aggregator.web.guards)
    anything else            500 internal_error      (a bug: logged with its traceback)

422 is never sent: bad input is 400 wherever it is, so a client needs one rule. Under /feeds/ the
same status and message are sent as plain text, because feed readers show the body of a failed
fetch to the person who pasted the URL.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Scope

from aggregator.errors import InvalidInputError, NotFoundError, RateLimitError, StorageError
from aggregator.web.schemas import ErrorBody

log = logging.getLogger(__name__)

FEEDS_PREFIX = "/feeds/"
_HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    406: "not_acceptable", 413: "too_large", 414: "uri_too_long", 415: "unsupported_media_type",
    429: "too_many_requests",
}
OTHER_CLIENT_ERRORS = ("Another client error, in the same shape: 404 no such path, 405 method not allowed (Allow "
                       "names the right ones), 413 body too large, 414 URL too long, 415 body not sent as JSON.")

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "A parameter or body field is malformed or names an unknown code, "
                                             "or the body is not valid JSON."},
    # "4XX" also keeps FastAPI from documenting a 422 of its own, which this API never sends.
    "4XX": {"model": ErrorBody, "description": OTHER_CLIENT_ERRORS},
    503: {"model": ErrorBody, "description": "The database is unreachable, too slow, or on another schema version."},
}

NOT_FOUND_RESPONSE: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "No such thing."}}
RATE_LIMITED_RESPONSE: dict[int | str, dict[str, Any]] = {
    429: {"model": ErrorBody, "description": "Too many requests from this client: retry after Retry-After seconds."}}


def error_response(status: int, code: str, message: str, details: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return JSONResponse(body, status_code=status, headers=headers)


def plain_text(response: Response) -> Response:
    """An error response of to_response as text: the same status, message and headers."""
    message = json.loads(bytes(response.body))["error"]["message"]
    headers = {k: v for k, v in response.headers.items() if k not in ("content-length", "content-type")}
    return Response(f"{message}\n", status_code=response.status_code, media_type="text/plain", headers=headers)


def route_path(path: str, root_path: str) -> str:
    """The path the app routes on: servers may or may not include the root path in `path`."""
    if root_path and path.startswith(root_path + "/"):
        return path[len(root_path):]
    return path


def for_scope(scope: Scope, response: Response) -> Response:
    """The response in the shape the requested path answers errors in: text under /feeds/, else JSON."""
    if route_path(scope.get("path", ""), scope.get("root_path", "")).startswith(FEEDS_PREFIX):
        return plain_text(response)
    return response


def _validation_parameter(error: dict[str, Any]) -> str:
    """FastAPI's location ("query", "limit") / ("body", "countries", 3) as the parameter's name."""
    loc = [str(part) for part in error.get("loc", ()) if part not in ("query", "path", "body", "header")]
    return ".".join(loc) or "body"


def _validation_response(exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    first = errors[0] if errors else {}
    if any(e.get("loc") == ("body",) and isinstance(e.get("input"), bytes | bytearray) for e in errors):
        # FastAPI hands the route the raw bytes when the Content-Type did not say JSON.
        return error_response(415, "unsupported_media_type", "the body must be JSON, sent with "
                              "Content-Type: application/json", {"expected": "application/json"})
    if first.get("type") == "json_invalid":
        loc = first.get("loc", ())
        position = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
        reason = str((first.get("ctx") or {}).get("error", "invalid"))
        where = f" at character {position}" if position is not None else ""
        return error_response(400, "invalid_json", f"body: not valid JSON ({reason}{where})",
                              {"parameter": "body", "position": position})
    parameter = _validation_parameter(first)
    problems = [{"parameter": _validation_parameter(e), "message": str(e.get("msg", ""))} for e in errors]
    return error_response(400, "invalid_parameter", f"{parameter}: {first.get('msg', 'invalid')}",
                          {"parameter": parameter, "errors": problems})


def _allow(headers: dict[str, str]) -> dict[str, str]:
    """HEAD is answered wherever GET is (aggregator.web.guards), so a 405 says so too."""
    allow = headers.get("Allow") or headers.get("allow")
    if allow is None:
        return headers
    methods = [m.strip() for m in allow.split(",") if m.strip()]
    if "GET" in methods and "HEAD" not in methods:
        methods.append("HEAD")
    return {**{k: v for k, v in headers.items() if k.lower() != "allow"}, "Allow": ", ".join(methods)}


def to_response(exc: Exception) -> JSONResponse:
    if isinstance(exc, InvalidInputError):
        return error_response(400, "invalid_parameter", str(exc), {"parameter": exc.parameter})
    if isinstance(exc, RequestValidationError):
        return _validation_response(exc)
    if isinstance(exc, NotFoundError):
        return error_response(404, "not_found", str(exc), {"what": exc.what})
    if isinstance(exc, RateLimitError):
        return error_response(429, "too_many_requests", str(exc), {"retry_after": exc.retry_after},
                              headers={"Retry-After": str(exc.retry_after)})
    if isinstance(exc, StorageError):
        log.warning("api.storage_error error=%s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return error_response(503, "unavailable", "the database is unavailable or the query took too long",
                              headers={"Retry-After": "5"})
    if isinstance(exc, HTTPException):
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), headers=_allow(dict(exc.headers or {})))
    log.error("api.internal_error", exc_info=exc)
    return error_response(500, "internal_error", "internal error")


def install(app: FastAPI) -> None:
    async def handle(request: Request, exc: Exception) -> Response:
        return for_scope(request.scope, to_response(exc))

    for exc_type in (InvalidInputError, RequestValidationError, NotFoundError, RateLimitError, StorageError,
                     HTTPException, Exception):
        app.add_exception_handler(exc_type, handle)
