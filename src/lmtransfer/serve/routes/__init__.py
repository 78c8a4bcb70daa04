"""The API's routes, a module per group (``listing``: health and models; ``predict``; ``encoders``: embeddings
and features). Each module's functions take the server's state and give a router; the app mounts them.

Answers are written by orjson (``Json``), numpy vectors included: FastAPI's own encoder walks every float
of an embedding in Python, and the standard library's encoder was the event loop's largest cost after
HTTP parsing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from fastapi.responses import Response
from pydantic import ValidationError

from lmtransfer.serve.errors import validation_error

T = TypeVar("T")


class Json(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def checked(parse: Callable[[bytes], T], raw: bytes) -> T:
    """``parse(raw)``, its pydantic ValidationError answered 422 with the fields that are wrong."""
    try:
        return parse(raw)
    except ValidationError as exc:
        raise validation_error(exc) from None
