"""What the routes share: the served runs and encoders by name, a batcher for each, the one queue limit
over all of them, and the settings. The batchers start and stop with the app's lifespan."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from lmtransfer.serve.batcher import Batcher, QueueLimit
from lmtransfer.serve.errors import ApiError
from lmtransfer.serve.served import ServedEncoder, ServedRun
from lmtransfer.serve.settings import Settings


@dataclass
class ServerState:
    runs: dict[str, ServedRun]
    encoders: dict[str, ServedEncoder]
    batchers: dict[tuple[str, str], Batcher]  # by ("run", name) and ("encoder", name)
    queue: QueueLimit
    settings: Settings

    @classmethod
    def of(cls, runs: list[ServedRun], encoders: list[ServedEncoder], settings: Settings) -> ServerState:
        queue = QueueLimit(settings.max_queue)
        limits = {
            "max_tokens": settings.max_batch_tokens,
            "max_wait": settings.max_wait_ms / 1000,
            "queue": queue,
            "batching": settings.batching,
        }
        batchers = {("run", r.name): Batcher(r.work, **limits) for r in runs}
        batchers.update({("encoder", e.name): Batcher(e.work, **limits) for e in encoders})
        return cls({r.name: r for r in runs}, {e.name: e for e in encoders}, batchers, queue, settings)

    @asynccontextmanager
    async def lifespan(self, app):
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lmtransfer-model")  # one batch at a time
        for batcher in self.batchers.values():
            batcher.start(executor)
        yield
        for batcher in self.batchers.values():  # uvicorn has finished the requests in flight; drain and stop
            await batcher.stop()
        executor.shutdown(wait=True)

    async def submit(self, key: tuple[str, str], items: list[Any], tokens: list[int]) -> list[Any]:
        """The results of a request's ``items`` from the model ``key`` names (413 when they are too many,
        503 when the queue has no room for them)."""
        if len(items) > self.settings.max_inputs:
            raise ApiError(413, f"{len(items)} inputs in one request; the most is {self.settings.max_inputs}", "inputs")
        return await self.batchers[key].submit(items, tokens)

    def run(self, name: str) -> ServedRun:
        if name not in self.runs:
            raise ApiError(404, f"no run '{name}' is served (served: {sorted(self.runs)})", "run")
        return self.runs[name]

    def encoder(self, name: str | None) -> ServedEncoder:
        """The encoder a request names; with no name, the only one served."""
        if name is None:
            if len(self.encoders) == 1:
                return next(iter(self.encoders.values()))
            if not self.encoders:
                raise ApiError(404, "no encoder is served (start the server with --encoder MODEL)", "model")
            raise ApiError(422, f"several encoders are served: name one of {sorted(self.encoders)}", "model")
        if name not in self.encoders:
            raise ApiError(404, f"no encoder '{name}' is served (served: {sorted(self.encoders)})", "model")
        return self.encoders[name]
