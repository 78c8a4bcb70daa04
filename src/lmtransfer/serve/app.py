"""The HTTP API on FastAPI: routes and the bearer key; the body limit (`serve.gate`) and errors as JSON that
name the field (`serve.errors`) sit beside it.

    GET  /health                 liveness, queue length, batches run (no key needed)
    GET  /v1/models              each run (task, labels, metrics, encoder hash) and encoder
    POST /v1/predict/{run}       the task's inputs in, ``lmtransfer predict``'s rows out
    POST /v1/embeddings          OpenAI's embeddings request and response
    POST /v1/features            pooled hidden states of chosen layers

Answers are written by orjson (``Json``), numpy vectors included: FastAPI's own encoder walks every
float of an embedding in Python, and the standard library's encoder was the event loop's largest cost
after HTTP parsing.
Every error body is ``{"error": {"message", "type", "field"}}`` (OpenAI's shape, plus the field), with
``errors`` listing each bad field of a 422. Request bodies are read whole, up to ``max_body_bytes``,
by a small ASGI wrapper before any route sees them, so an oversize body costs no more than that.
"""

from __future__ import annotations

import hmac
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from lmtransfer.core.errors import LmtError
from lmtransfer.serve.batcher import Batcher, QueueFull
from lmtransfer.serve.errors import ApiError, error_body, validation_error
from lmtransfer.serve.gate import Gate
from lmtransfer.serve.schemas import EmbeddingsRequest, FeaturesRequest
from lmtransfer.serve.served import ServedEncoder, ServedRun, embedding_value

log = logging.getLogger("lmtransfer.serve")


@dataclass(frozen=True)
class Settings:
    """How the server batches and what it accepts (the serve command's options)."""

    max_batch_tokens: int = 16384
    max_wait_ms: float = 5.0
    max_queue: int = 1024  # inputs waiting, over all models; more is refused with 503
    max_inputs: int = 256  # inputs in one request; more is 413
    max_body_bytes: int = 4 * 1024 * 1024
    api_key: str | None = None
    batching: bool = True


class Json(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def build_app(runs: list[ServedRun], encoders: list[ServedEncoder], settings: Settings | None = None) -> FastAPI:
    """The API over loaded ``runs`` and ``encoders``; batchers start and stop with the app's lifespan."""
    settings = settings or Settings()
    limits = {
        "max_tokens": settings.max_batch_tokens,
        "max_wait": settings.max_wait_ms / 1000,
        "max_queue": settings.max_queue,
        "batching": settings.batching,
    }
    run_table = {r.name: r for r in runs}
    encoder_table = {e.name: e for e in encoders}
    batchers = {("run", r.name): Batcher(r.work, **limits) for r in runs}
    batchers.update({("encoder", e.name): Batcher(e.work, **limits) for e in encoders})

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lmtransfer-model")  # one batch at a time
        for batcher in batchers.values():
            batcher.start(executor)
        yield
        for batcher in batchers.values():  # uvicorn has finished the requests in flight; drain and stop
            await batcher.stop()
        executor.shutdown(wait=True)

    app = FastAPI(title="lmtransfer", summary="trained lmtransfer runs and encoders over HTTP", lifespan=lifespan)
    app.state.batchers = batchers

    async def require_key(request: Request) -> None:  # async: FastAPI runs a plain def in a worker thread
        if settings.api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), settings.api_key.encode()):
            raise ApiError(401, "a valid API key is needed: Authorization: Bearer <key>", "authorization", "auth_error")

    def refuse_if_full(count: int = 1) -> None:
        """503 at once when ``count`` more inputs would not fit the queue (checked first, before a body is
        parsed, so that refusing costs next to nothing under overload)."""
        queued = sum(b.queued for b in batchers.values())
        if queued + count > settings.max_queue:
            raise QueueFull(f"{queued} inputs are waiting")

    async def submit(key: tuple[str, str], items: list[Any], tokens: list[int]) -> list[Any]:
        if len(items) > settings.max_inputs:
            raise ApiError(413, f"{len(items)} inputs in one request; the most is {settings.max_inputs}", "inputs")
        refuse_if_full(len(items))
        return await batchers[key].submit(items, tokens)

    def body_of(model, raw: bytes):
        try:
            return model.model_validate_json(raw)
        except ValidationError as exc:
            raise validation_error(exc) from None

    def encoder_for(name: str | None) -> ServedEncoder:
        if name is None:
            if len(encoder_table) == 1:
                return next(iter(encoder_table.values()))
            if not encoder_table:
                raise ApiError(404, "no encoder is served (start the server with --encoder MODEL)", "model")
            raise ApiError(422, f"several encoders are served: name one of {sorted(encoder_table)}", "model")
        if name not in encoder_table:
            raise ApiError(404, f"no encoder '{name}' is served (served: {sorted(encoder_table)})", "model")
        return encoder_table[name]

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "models": sorted(run_table) + sorted(encoder_table),
            "queued": sum(b.queued for b in batchers.values()),
            "batches": sum(b.batches for b in batchers.values()),
            "batched_inputs": sum(b.batched_items for b in batchers.values()),
        }

    @app.get("/v1/models", dependencies=[Depends(require_key)])
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [r.info() for r in runs] + [e.info() for e in encoders]}

    @app.post("/v1/predict/{run}", dependencies=[Depends(require_key)])
    async def predict(run: str, request: Request) -> JSONResponse:
        served = run_table.get(run)
        if served is None:
            raise ApiError(404, f"no run '{run}' is served (served: {sorted(run_table)})", "run")
        refuse_if_full()
        try:
            items = served.parse(await request.body())
        except ValidationError as exc:
            raise validation_error(exc) from None
        outputs = await submit(("run", run), items, served.tokens(items))
        return Json({"model": run, "task": served.task, "outputs": outputs})

    @app.post("/v1/embeddings", dependencies=[Depends(require_key)])
    async def embeddings(request: Request) -> JSONResponse:
        refuse_if_full()
        body = body_of(EmbeddingsRequest, await request.body())
        served = encoder_for(body.model)
        if body.dimensions is not None and body.dimensions != served.encoder.hidden_size:
            raise ApiError(
                422, f"{served.name} gives {served.encoder.hidden_size}-dimensional embeddings only", "dimensions"
            )
        items = served.items(body.texts(), (served.last,), "mean", True)
        vectors = await submit(("encoder", served.name), items, [len(i.ids) for i in items])
        tokens = sum(len(i.ids) for i in items)
        data = [
            {"object": "embedding", "index": i, "embedding": embedding_value(v[0], body.encoding_format)}
            for i, v in enumerate(vectors)
        ]
        return Json({"object": "list", "data": data, "model": served.name, "usage": _usage(tokens)})

    @app.post("/v1/features", dependencies=[Depends(require_key)])
    async def features(request: Request) -> JSONResponse:
        refuse_if_full()
        body = body_of(FeaturesRequest, await request.body())
        served = encoder_for(body.model)
        try:
            layers = served.layers(body.layers)
        except ValueError as exc:
            raise ApiError(422, f"layers: {exc}", "layers") from None
        items = served.items(body.texts(), layers, body.pooling, False)
        vectors = await submit(("encoder", served.name), items, [len(i.ids) for i in items])
        data = [{"index": i, "features": v} for i, v in enumerate(vectors)]
        tokens = sum(len(i.ids) for i in items)
        answer = {"object": "list", "model": served.name, "layers": list(layers), "pooling": body.pooling}
        return Json({**answer, "data": data, "usage": _usage(tokens)})

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        extra = {"errors": exc.errors} if hasattr(exc, "errors") else {}
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(error_body(exc.status, exc.message, exc.field, exc.kind, **extra), exc.status, headers)

    @app.exception_handler(QueueFull)
    async def queue_full(request: Request, exc: QueueFull) -> JSONResponse:
        message = f"the server is busy ({exc}); try again shortly"
        return JSONResponse(error_body(503, message, None, "overloaded"), 503, {"Retry-After": "1"})

    @app.exception_handler(RequestValidationError)
    async def request_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return await api_error(request, validation_error(exc))

    @app.exception_handler(LmtError)
    async def input_error(request: Request, exc: LmtError) -> JSONResponse:  # an input the task cannot read
        return JSONResponse(error_body(422, exc.message, exc.field or "inputs"), 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(error_body(exc.status_code, str(exc.detail), None), exc.status_code, exc.headers)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("error while answering %s %s", request.method, request.url.path)
        return JSONResponse(error_body(500, f"internal error ({type(exc).__name__})", None, "server_error"), 500)

    def full() -> bool:
        return sum(b.queued for b in batchers.values()) >= settings.max_queue

    app.add_middleware(Gate, limit=settings.max_body_bytes, full=full)
    return app


def _usage(tokens: int) -> dict[str, int]:
    return {"prompt_tokens": tokens, "total_tokens": tokens}
