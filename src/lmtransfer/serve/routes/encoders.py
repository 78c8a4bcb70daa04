"""``POST /v1/embeddings`` (OpenAI's embeddings request and response) and ``POST /v1/features`` (pooled
hidden states of chosen layers), answered by a served encoder."""

from __future__ import annotations

from fastapi import APIRouter, Request

from lmtransfer.serve.errors import ApiError
from lmtransfer.serve.routes import Json, checked
from lmtransfer.serve.schemas import EmbeddingsRequest, FeaturesRequest
from lmtransfer.serve.served import embedding_value
from lmtransfer.serve.state import ServerState


def encoder_routes(state: ServerState) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/embeddings")
    async def embeddings(request: Request) -> Json:
        body = checked(EmbeddingsRequest.model_validate_json, await request.body())
        served = state.encoder(body.model)
        if body.dimensions is not None and body.dimensions != served.encoder.hidden_size:
            message = f"{served.name} gives {served.encoder.hidden_size}-dimensional embeddings only"
            raise ApiError(422, message, "dimensions")
        items = served.items(body.texts(), (served.last,), "mean", True)
        vectors = await state.submit(("encoder", served.name), items, [len(i.ids) for i in items])
        data = [
            {"object": "embedding", "index": i, "embedding": embedding_value(v[0], body.encoding_format)}
            for i, v in enumerate(vectors)
        ]
        tokens = sum(len(i.ids) for i in items)
        return Json({"object": "list", "data": data, "model": served.name, "usage": _usage(tokens)})

    @router.post("/v1/features")
    async def features(request: Request) -> Json:
        body = checked(FeaturesRequest.model_validate_json, await request.body())
        served = state.encoder(body.model)
        try:
            layers = served.layers(body.layers)
        except ValueError as exc:
            raise ApiError(422, f"layers: {exc}", "layers") from None
        items = served.items(body.texts(), layers, body.pooling, False)
        vectors = await state.submit(("encoder", served.name), items, [len(i.ids) for i in items])
        data = [{"index": i, "features": v} for i, v in enumerate(vectors)]
        tokens = sum(len(i.ids) for i in items)
        answer = {"object": "list", "model": served.name, "layers": list(layers), "pooling": body.pooling}
        return Json({**answer, "data": data, "usage": _usage(tokens)})

    return router


def _usage(tokens: int) -> dict[str, int]:
    return {"prompt_tokens": tokens, "total_tokens": tokens}
