"""The one place where errors become HTTP responses, all in one JSON shape:

    {"error": {"code": "invalid_parameter", "message": "country: unknown country code 'QQ'",
               "details": {"parameter": "country"}}}

    InvalidQueryError        400 invalid_parameter   (our parsers: names the parameter)
    RequestValidationError   422 invalid_request     (FastAPI's own checks of path and body)
    NotFoundError            404 not_found
    RateLimitError           429 too_many_requests   (with Retry-After)
    StorageError             503 unavailable         (database down, statement timeout, old schema)
    HTTPException            its status              (401 unauthorized, 404 unknown route, 405 …)
    anything else            500 internal_error      (a bug: logged with its traceback)
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from aggregator.errors import InvalidQueryError, NotFoundError, RateLimitError, StorageError
from aggregator.web.schemas import ErrorBody

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    406: "not_acceptable", 413: "too_large", 415: "unsupported_media_type", 429: "too_many_requests",
}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "A parameter is malformed or names an unknown code."},
    422: {"model": ErrorBody, "description": "The path or the request body does not match the schema."},
    503: {"model": ErrorBody, "description": "The database is unreachable, too slow, or on another schema version."},
}

NOT_FOUND_RESPONSE: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "No such thing."}}
RATE_LIMITED_RESPONSE: dict[int | str, dict[str, Any]] = {
    429: {"model": ErrorBody, "description": "Too many requests from this client: retry after Retry-After seconds."}}


def error_response(status: int, code: str, message: str, details: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_parameter(error: dict[str, Any]) -> str:
    """FastAPI's location ("query", "limit") / ("body", "countries", 3) as the parameter's name."""
    loc = [str(part) for part in error.get("loc", ()) if part not in ("query", "path", "body", "header")]
    return ".".join(loc) or "body"


def to_response(exc: Exception) -> JSONResponse:
    if isinstance(exc, InvalidQueryError):
        return error_response(400, "invalid_parameter", str(exc), {"parameter": exc.parameter})
    if isinstance(exc, RequestValidationError):
        errors = list(exc.errors())
        first = errors[0] if errors else {}
        parameter = _validation_parameter(first)
        problems = [{"parameter": _validation_parameter(e), "message": str(e.get("msg", ""))} for e in errors]
        return error_response(422, "invalid_request", f"{parameter}: {first.get('msg', 'invalid')}",
                              {"parameter": parameter, "errors": problems})
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
        return error_response(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}))
    log.error("api.internal_error", exc_info=exc)
    return error_response(500, "internal_error", "internal error")


def install(app: FastAPI) -> None:
    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        return to_response(exc)

    for exc_type in (InvalidQueryError, RequestValidationError, NotFoundError, RateLimitError, StorageError,
                     HTTPException, Exception):
        app.add_exception_handler(exc_type, handle)
