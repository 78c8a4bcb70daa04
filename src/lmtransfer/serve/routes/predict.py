"""``POST /v1/predict/{run}``: the run's task's inputs in, ``lmtransfer predict``'s rows out."""

from __future__ import annotations

from fastapi import APIRouter, Request

from lmtransfer.serve.routes import Json, checked
from lmtransfer.serve.state import ServerState


def predict_routes(state: ServerState) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/predict/{run}")
    async def predict(run: str, request: Request) -> Json:
        served = state.run(run)
        items = checked(served.parse, await request.body())
        outputs = await state.submit(("run", run), items, served.tokens(items))
        return Json({"model": run, "task": served.task, "outputs": outputs})

    return router
