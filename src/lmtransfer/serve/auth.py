"""The bearer key that ``/v1`` routes ask for when the server has one (``/health`` stays open)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from fastapi import Request

from lmtransfer.serve.errors import ApiError


def key_check(api_key: str | None) -> Callable[[Request], Awaitable[None]]:
    """A route dependency that answers 401 unless the request carries ``Authorization: Bearer <api_key>``
    (compared in constant time); with no key, it lets every request through."""

    async def require_key(request: Request) -> None:  # async: FastAPI runs a plain def in a worker thread
        if api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
            raise ApiError(401, "a valid API key is needed: Authorization: Bearer <key>", "authorization", "auth_error")

    return require_key
