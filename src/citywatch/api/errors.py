"""The one canonical JSON error body, for every error the API returns.

::

    {"error": {"status": 422, "code": "validation_error", "message": "...", "field": "lon"}}

:class:`citywatch.errors.CityWatchError` subclasses map to their ``status_code`` and ``code``;
request validation errors of FastAPI become ``validation_error`` naming the first offending
field; HTTP errors of the framework (unknown route, wrong method) keep their status; anything
else is a logged ``internal_error`` whose message reveals nothing.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from citywatch.errors import AuthenticationError, CityWatchError, TooManyRequestsError

__all__ = ["error_body", "error_response", "install_error_handlers"]

log = logging.getLogger("citywatch.api")

_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
}


def error_body(
    status: int, code: str, message: str, field: str | None = None, **extra: Any
) -> dict[str, Any]:
    """The canonical error body.

    Parameters
    ----------
    status : int
        HTTP status.
    code : str
        Stable machine-readable code (``validation_error``, ``conflict``, ...).
    message : str
        Human-readable explanation.
    field : str, optional
        The request field at fault.
    **extra
        Further members (e.g. ``errors`` with every validation problem).

    Returns
    -------
    dict
    """
    return {"error": {"status": status, "code": code, "message": message, "field": field, **extra}}


def error_response(exc: CityWatchError) -> JSONResponse:
    """The answer to a domain error: its status, the canonical body, and the headers its
    kind needs (``WWW-Authenticate``, ``Retry-After``)."""
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthenticationError) else None
    if isinstance(exc, TooManyRequestsError):
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
    extra = {} if exc.details is None else {"details": exc.details}
    return JSONResponse(
        error_body(exc.status_code, exc.code, exc.message, exc.field, **extra),
        status_code=exc.status_code,
        headers=headers,
    )


def _field_of(loc: tuple[Any, ...] | list[Any]) -> str:
    # ("body", "location", "lon") -> "location.lon"; ("query", "k") -> "k"
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    """Make every error of ``app`` answer with the canonical body."""

    @app.exception_handler(CityWatchError)
    async def _domain(_: Request, exc: CityWatchError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field_of(e.get("loc", ())), "message": str(e.get("msg", "invalid"))}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "body", "message": "invalid request"}
        return JSONResponse(
            error_body(
                422,
                "validation_error",
                f"{first['field']}: {first['message']}",
                first["field"],
                errors=errors,
            ),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        return JSONResponse(
            error_body(exc.status_code, code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            error_body(
                500, "internal_error", "internal server error; the incident has been logged"
            ),
            status_code=500,
        )
