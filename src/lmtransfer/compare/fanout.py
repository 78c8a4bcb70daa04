"""A phase of a comparison (its searches and their trials, its extractions, its rows) run side by side: at most
``n`` calls at once, each in a thread of this process that waits on its executor (Ray runs the jobs); with
``n = 1`` each call runs when it is started, in this thread, one after another (the local executor: unchanged).
A board counts what a phase has done, runs and has waiting, and the time left at its pace so far. Ctrl-C (or an
error) in the thread that waits cancels the jobs running (``Executor.cancel``) and waits for their threads to
end, so that only finished jobs are recorded and a rerun resumes the rest."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Board:
    """What one phase has done, runs and has waiting, and the time left at the pace so far."""

    def __init__(self, name: str, total: int) -> None:
        self.name, self.total = name, total
        self.done = self.running = 0
        self.began = time.perf_counter()
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            self.running += 1

    def finish(self) -> str:
        """Count a job done; the board's line."""
        with self._lock:
            self.running, self.done = self.running - 1, self.done + 1
            return self.line()

    def line(self) -> str:
        waiting = max(0, self.total - self.done - self.running)
        text = f"{self.name}: {self.done} of {self.total} done, {self.running} running, {waiting} waiting"
        if 0 < self.done < self.total:
            left = (time.perf_counter() - self.began) / self.done * (self.total - self.done)
            text += f"; about {_duration(left)} left"
        return text


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:,.0f} min"


class Slots:
    """At most ``n`` calls at once, each in a thread; with ``n = 1`` a call runs when started, here, and its
    exceptions (Ctrl-C too) go straight up. Used as a context manager: leaving it on an exception calls
    ``cancel`` and waits for the threads."""

    def __init__(self, n: int, cancel: Callable[[], None]) -> None:
        self.n, self._cancel = max(1, n), cancel
        self._pool: ThreadPoolExecutor | None = None
        self._running: set[Future] = set()

    def __enter__(self) -> Slots:
        if self.n > 1:
            self._pool = ThreadPoolExecutor(self.n, thread_name_prefix="compare")
        return self

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: Any) -> None:
        if exc is not None:  # Ctrl-C, or an error: stop what runs, so that the threads end soon
            self._cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    @property
    def free(self) -> bool:
        return len(self._running) < self.n

    @property
    def busy(self) -> bool:
        return bool(self._running)

    def start(self, fn: Callable[..., R], *args: Any) -> Future[R]:
        if self._pool is None:
            future: Future[R] = Future()
            future.set_result(fn(*args))
        else:
            future = self._pool.submit(fn, *args)
        self._running.add(future)
        return future

    def first_done(self) -> Future:
        """A started call that has finished (waiting for one), no longer counted as running. The wait wakes
        every half second, so that Ctrl-C, which Python raises in this thread between waits, is not held up."""
        done = next((f for f in self._running if f.done()), None)
        while done is None:
            finished, _ = wait(self._running, timeout=0.5, return_when=FIRST_COMPLETED)
            done = next(iter(finished), None)
        self._running.discard(done)
        return done


def fan_out(items: Sequence[T], fn: Callable[[T], R], n: int, cancel: Callable[[], None]) -> list[R]:
    """``fn`` of each item, at most ``n`` at once; the results in the items' order."""
    results: dict[int, R] = {}
    index_of: dict[Future, int] = {}
    with Slots(n, cancel) as slots:
        for index, item in enumerate(items):
            while not slots.free:
                done = slots.first_done()
                results[index_of[done]] = done.result()
            index_of[slots.start(fn, item)] = index
        while slots.busy:
            done = slots.first_done()
            results[index_of[done]] = done.result()
    return [results[i] for i in range(len(items))]
