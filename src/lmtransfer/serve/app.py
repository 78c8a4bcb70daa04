"""The HTTP API on FastAPI: the routes (``serve.routes``), behind the bearer key (``serve.auth``) and the
gate (``serve.gate``) that refuses oversize bodies and requests to a full queue.

    GET  /health                 liveness, queue length, batches run (no key needed)
    GET  /v1/models              each run (task, labels, metrics, encoder hash) and encoder
    POST /v1/predict/{run}       the task's inputs in, ``lmtransfer predict``'s rows out
    POST /v1/embeddings          OpenAI's embeddings request and response
    POST /v1/features            pooled hidden states of chosen layers

Every error body is ``{"error": {"message", "type", "field"}}`` (OpenAI's shape, plus the field), with
``errors`` listing each bad field of a 422 (``serve.errors``). Request bodies are read whole, up to
``max_body_bytes``, by the gate before any route sees them, so an oversize body costs no more than that.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI

from lmtransfer.serve.auth import key_check
from lmtransfer.serve.errors import HANDLERS
from lmtransfer.serve.gate import Gate
from lmtransfer.serve.routes.encoders import encoder_routes
from lmtransfer.serve.routes.listing import health_routes, models_routes
from lmtransfer.serve.routes.predict import predict_routes
from lmtransfer.serve.served import ServedEncoder, ServedRun
from lmtransfer.serve.settings import Settings
from lmtransfer.serve.state import ServerState


def build_app(runs: list[ServedRun], encoders: list[ServedEncoder], settings: Settings | None = None) -> FastAPI:
    """The API over loaded ``runs`` and ``encoders``; ``app.state.server`` holds them with their batchers."""
    state = ServerState.of(runs, encoders, settings or Settings())
    app = FastAPI(
        title="lmtransfer",
        summary="trained lmtransfer runs and encoders over HTTP",
        lifespan=state.lifespan,
        exception_handlers=HANDLERS,
    )
    app.state.server = state
    app.include_router(health_routes(state))
    keyed = [Depends(key_check(state.settings.api_key))]
    for routes in (models_routes, predict_routes, encoder_routes):
        app.include_router(routes(state), dependencies=keyed)
    app.add_middleware(Gate, limit=state.settings.max_body_bytes, queue=state.queue)
    return app
