"""Errors of the HTTP API as JSON that names the field: ``{"error": {"message", "type", "field"}}`` (OpenAI's
shape, plus the field), with ``errors`` listing each bad field of a 422; ``HANDLERS`` answer each kind of
exception a route may raise."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from lmtransfer.core.errors import LmtError
from lmtransfer.serve.batcher import QueueFull

log = logging.getLogger("lmtransfer.serve")


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.field, self.kind = status, message, field, kind


def error_body(status: int, message: str, field: str | None = None, kind: str = "invalid_request_error", **extra):
    body: dict[str, Any] = {"error": {"message": message, "type": kind, "field": field}}
    body.update(extra)
    return body


def busy(exc: QueueFull) -> JSONResponse:
    """The answer to a request that the full queue refuses, from the gate or from a batcher: 503 at once,
    with Retry-After."""
    message = f"the server is busy ({exc}); try again shortly"
    return JSONResponse(error_body(503, message, None, "overloaded"), 503, {"Retry-After": "1"})


def _field(loc: tuple | list) -> str:
    """A pydantic location as a dotted field; the union member pydantic tried (``list[str]``) left out."""
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(p for p in parts if not ("[" in p or p in ("str", "list", "tuple", "Pair", "int")))


def validation_error(exc: ValidationError | RequestValidationError) -> ApiError:
    seen, errors = set(), []
    for e in exc.errors():
        field = _field(e.get("loc", ()))
        if (field, e["msg"]) not in seen:
            seen.add((field, e["msg"]))
            errors.append({"field": field or "body", "message": e["msg"]})
    first = errors[0] if errors else {"field": "body", "message": "invalid request"}
    error = ApiError(422, f"{first['field']}: {first['message']}", first["field"])
    error.errors = errors[:20]
    return error


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    extra = {"errors": exc.errors} if hasattr(exc, "errors") else {}
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(error_body(exc.status, exc.message, exc.field, exc.kind, **extra), exc.status, headers)


async def _queue_full(request: Request, exc: QueueFull) -> JSONResponse:
    return busy(exc)


async def _request_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    return await _api_error(request, validation_error(exc))


async def _input_error(request: Request, exc: LmtError) -> JSONResponse:  # an input the task cannot read
    return JSONResponse(error_body(422, exc.message, exc.field or "inputs"), 422)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse(error_body(exc.status_code, str(exc.detail), None), exc.status_code, exc.headers)


async def _internal(request: Request, exc: Exception) -> JSONResponse:
    log.exception("error while answering %s %s", request.method, request.url.path)
    return JSONResponse(error_body(500, f"internal error ({type(exc).__name__})", None, "server_error"), 500)


HANDLERS = {
    ApiError: _api_error,
    QueueFull: _queue_full,
    RequestValidationError: _request_invalid,
    LmtError: _input_error,
    StarletteHTTPException: _http_error,
    Exception: _internal,
}
