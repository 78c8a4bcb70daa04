"""Dynamic batching: requests that arrive together share forward passes.

Each request hands its items (texts, pairs, questions) and their token counts to a model's ``Batcher``.
The batcher takes the oldest waiting requests, adds later ones while the batch stays under a token
budget and the oldest has waited less than ``max_wait``, runs the batch off the event loop in the one
model thread, and answers each request with its own slice of the results. While a batch runs, the
next one gathers, so under load batches fill without waiting.

Written here rather than taken from a library: the serving libraries that batch (Infinity, TEI,
Ray Serve) batch their own models and cannot be handed a task model; what is needed is a queue of
futures, about a hundred lines on asyncio.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any


class QueueFull(Exception):
    """The queue has no room for a request's inputs; the request is refused at once (HTTP 503)."""


class QueueLimit:
    """The one rule for a full queue: at most ``most`` inputs wait, over all the batchers that share it.

    The batchers count what waits in ``waiting``; the gate asks ``full()`` before a body is parsed, and a
    batcher refuses a request whose inputs would not fit with ``full(count)``.
    """

    def __init__(self, most: int = 1024) -> None:
        self.most = most
        self.waiting = 0

    def full(self, count: int = 1) -> bool:
        """Whether ``count`` more inputs would be over the limit."""
        return self.waiting + count > self.most

    def refusal(self) -> QueueFull:
        return QueueFull(f"{self.waiting} inputs are waiting")


@dataclass
class _Job:
    items: list[Any]
    tokens: int
    future: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)


class Batcher:
    """Batches of requests under ``max_tokens`` (the sum of their items' token counts), each request
    waiting at most ``max_wait`` seconds for others to join; ``queue`` bounds the items waiting. With
    ``batching`` off every request is its own batch, run as soon as the model thread is free.

    ``work(items)`` runs in the executor given to ``start`` and returns one result per item, in order. A
    request larger than the budget runs alone (``work`` splits it into the model's own batches).
    """

    def __init__(
        self,
        work: Callable[[list[Any]], Sequence[Any]],
        *,
        max_tokens: int = 16384,
        max_wait: float = 0.005,
        queue: QueueLimit | None = None,
        batching: bool = True,
    ) -> None:
        self.work = work
        self.executor: Executor | None = None
        self.max_tokens = max_tokens
        self.max_wait = max_wait
        self.queue = queue or QueueLimit()
        self.batching = batching
        self._pending: deque[_Job] = deque()
        self._arrival: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self.batches = 0  # how many batches ran, and their items: for /health and the tests
        self.batched_items = 0

    def start(self, executor: Executor) -> None:
        """Start the batching task on the running event loop; batches run in ``executor``."""
        self.executor = executor
        self._arrival = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Finish what is queued, then stop (the server is shutting down; no new requests arrive)."""
        while self._pending:
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def submit(self, items: list[Any], tokens: Sequence[int]) -> list[Any]:
        """The results of ``items`` (one per item), computed in a batch with whatever else is waiting."""
        if self._task is None:
            raise RuntimeError("the batcher is not started")
        if self.queue.full(len(items)):
            raise self.queue.refusal()
        job = _Job(list(items), int(sum(tokens)), asyncio.get_running_loop().create_future())
        self._pending.append(job)
        self.queue.waiting += len(job.items)  # waiting: not yet in a running batch
        self._arrival.set()
        return await job.future

    async def _run(self) -> None:
        while True:
            if not self._pending:
                self._arrival.clear()
                await self._arrival.wait()
            await self._gather()
            jobs = self._take()
            if jobs:
                await self._execute(jobs)

    async def _gather(self) -> None:
        """Wait until the waiting requests fill the budget or the oldest has waited ``max_wait``."""
        if not self.batching:
            return
        deadline = self._pending[0].arrived + self.max_wait
        while sum(j.tokens for j in self._pending) < self.max_tokens:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._arrival.clear()
            try:
                await asyncio.wait_for(self._arrival.wait(), left)
            except TimeoutError:
                return

    def _take(self) -> list[_Job]:
        """The oldest requests that fit the budget together (at least one); requests whose client has
        gone (their future cancelled) are dropped."""
        jobs, tokens = [], 0
        while self._pending:
            job = self._pending[0]
            if job.future.done():  # cancelled: its client disconnected or timed out
                self._pending.popleft()
                self.queue.waiting -= len(job.items)
                continue
            if jobs and (not self.batching or tokens + job.tokens > self.max_tokens):
                break
            self._pending.popleft()
            self.queue.waiting -= len(job.items)
            jobs.append(job)
            tokens += job.tokens
        return jobs

    async def _execute(self, jobs: list[_Job]) -> None:
        items = [item for job in jobs for item in job.items]
        try:
            results = await self._call(items)
        except Exception as exc:
            if len(jobs) > 1:  # one request's input broke the batch: each request again alone, so that
                for job in jobs:  # only that request gets the error
                    await self._execute([job])
                return
            if not jobs[0].future.done():
                jobs[0].future.set_exception(exc)
            return
        self.batches += 1
        self.batched_items += len(items)
        start = 0
        for job in jobs:
            if not job.future.done():
                job.future.set_result(list(results[start : start + len(job.items)]))
            start += len(job.items)

    async def _call(self, items: list[Any]) -> Sequence[Any]:
        results = await asyncio.get_running_loop().run_in_executor(self.executor, self.work, items)
        if len(results) != len(items):
            raise RuntimeError(f"the model gave {len(results)} results for {len(items)} inputs")
        return results
