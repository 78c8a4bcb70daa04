"""``GET /health`` (liveness, queue length, batches run; no key needed) and ``GET /v1/models`` (each run's
task, labels, metrics and encoder hash, and each encoder)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from lmtransfer.serve.state import ServerState


def health_routes(state: ServerState) -> APIRouter:
    router = APIRouter()

    @router.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "models": sorted(state.runs) + sorted(state.encoders),
            "queued": state.queue.waiting,
            "batches": sum(b.batches for b in state.batchers.values()),
            "batched_inputs": sum(b.batched_items for b in state.batchers.values()),
        }

    return router


def models_routes(state: ServerState) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/models")
    async def models() -> dict[str, Any]:
        served = [r.info() for r in state.runs.values()] + [e.info() for e in state.encoders.values()]
        return {"object": "list", "data": served}

    return router
