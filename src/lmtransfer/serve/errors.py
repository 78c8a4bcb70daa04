"""Errors of the HTTP API as JSON that names the field: ``{"error": {"message", "type", "field"}}`` (OpenAI's
shape, plus the field), with ``errors`` listing each bad field of a 422."""

from __future__ import annotations

from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.field, self.kind = status, message, field, kind


def error_body(status: int, message: str, field: str | None = None, kind: str = "invalid_request_error", **extra):
    body: dict[str, Any] = {"error": {"message": message, "type": kind, "field": field}}
    body.update(extra)
    return body


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
