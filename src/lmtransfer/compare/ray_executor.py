"""A comparison's jobs as Ray tasks (``compare.executor: ray``), on this machine or a cluster.

Each job (a row, a search trial, a shared extraction, an adoption) is one Ray task: ``compare.worker.run_job``
in a worker process of its own (``max_calls=1``: a fresh process per task, so that its peak memory is its own
and a GPU's memory goes back when it ends), reserving the CPUs and GPUs ``compare.resources`` gives its kind
(its torch threads: its CPUs), in the driver's working directory, with the driver's ``LMTRANSFER_*``
environment, what it prints going to stderr. The driver (this process) waits on the tasks from threads
(``compare.fanout``) and alone appends rows to results.jsonl, from the outcomes the tasks return.

A task whose worker is lost (killed, out of memory, its node gone) is run again by Ray, up to
``compare.retries`` times: nothing was recorded of the lost attempt, and the run folder it was making is written
whole at the end or not at all (``core.atomic.write_dir``). Ctrl-C cancels the tasks running (``ray.cancel``,
their processes killed); their rows are not recorded, so a rerun runs them.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import threading
import time
from typing import Any

from lmtransfer.compare.execute import Cancelled, Ran, Work, say
from lmtransfer.compare.shared_paths import check_shared
from lmtransfer.compare.worker import run_job
from lmtransfer.config.schema import RunConfig
from lmtransfer.core.choices import RESOURCE_KINDS
from lmtransfer.core.errors import LmtError

RAY_MISSING = "Ray is not installed: pip install 'lmtransfer[ray]'"


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise LmtError(RAY_MISSING, field="compare.executor") from None
    return ray


def run_in_worker(job: dict[str, Any], cwd: str) -> tuple[dict[str, Any], float]:
    """One job on a Ray worker, in the driver's working directory (where relative paths point) where this node
    has it, what it prints to stderr: its outcome and the seconds it took here."""
    began = time.perf_counter()
    if os.path.isdir(cwd):
        os.chdir(cwd)
    with contextlib.redirect_stdout(sys.stderr):
        outcome = run_job(job)
    return outcome, time.perf_counter() - began


class RayExecutor:
    """Runs each job as a Ray task; entering it joins the cluster (or starts a Ray instance here) and checks that
    every node sees the comparison's files; leaving it stops the instance it started."""

    def __init__(self, config: RunConfig) -> None:
        assert config.compare is not None
        self.config, self.compare = config, config.compare
        self._started = self._cancelled = False
        self._reserved: dict[str, tuple[float, float]] = {}  # kind -> (CPUs, GPUs) a job reserves
        self._capacity: dict[str, int] = {}  # kind -> jobs of it the cluster holds at once
        self._running: set[Any] = set()  # the tasks' object refs
        self._lock = threading.Lock()
        self._task: Any = None
        self._env: dict[str, str] = {}

    def __enter__(self) -> RayExecutor:
        ray = import_ray()
        self._started = not ray.is_initialized()  # (a Ray this process already joined is used as it is)
        if self._started:
            _connect(ray, self.compare.ray_address)
        try:
            self._plan(ray.cluster_resources())
            check_shared(ray, self.config)  # refuses before any job runs
        except BaseException:
            self.__exit__()
            raise
        self._task = ray.remote(max_calls=1)(run_in_worker)  # (looked up now: a test may stand in for it)
        self._env = {k: v for k, v in os.environ.items() if k.startswith("LMTRANSFER_")}
        return self

    def __exit__(self, *exc: object) -> None:
        if self._running:
            self.cancel()
        if self._started:
            import_ray().shutdown()
            self._started = False

    def _plan(self, cluster: dict[str, float]) -> None:
        """Each kind's reservation and how many of its jobs fit at once; refuses a kind that fits nowhere."""
        for kind in RESOURCE_KINDS:
            cpus, gpus = self.compare.resources.reserved(kind, cluster.get("GPU", 0.0))
            fits = min(_fit(cluster.get("CPU", 0.0), cpus), _fit(cluster.get("GPU", 0.0), gpus))
            if fits < 1:
                have = f"{cluster.get('CPU', 0):g} CPUs and {cluster.get('GPU', 0):g} GPUs"
                message = f"a job asks {cpus:g} CPUs and {gpus:g} GPUs; the Ray cluster has {have}"
                raise LmtError(message, field=f"compare.resources.{kind}")
            self._reserved[kind], self._capacity[kind] = (cpus, gpus), fits
        at_once = ", ".join(f"{self._capacity[k]} {k}" for k in RESOURCE_KINDS)
        say(f"compare: on Ray, {cluster.get('CPU', 0):g} CPUs, {cluster.get('GPU', 0):g} GPUs; at once: {at_once}")

    def slots(self, needs: str | None = None) -> int:
        return self._capacity[needs] if needs is not None else max(self._capacity.values())

    def isolated(self, work: Work) -> bool:
        return True  # every task in a fresh worker process

    def run(self, work: Work) -> Ran:
        ray = import_ray()
        cpus, gpus = self._reserved[work.needs]
        options: dict[str, Any] = {"num_cpus": cpus, "num_gpus": gpus, "max_retries": self.compare.retries}
        options |= {"name": f"lmtransfer-{work.kind}"}
        if self._env:
            options["runtime_env"] = {"env_vars": self._env}
        job = work.job(progress=False, threads=max(1, int(cpus)))  # (the board shows progress, not bars)
        with self._lock:
            if self._cancelled:
                raise Cancelled
            ref = self._task.options(**options).remote(job, os.getcwd())
            self._running.add(ref)
        try:
            outcome, seconds = ray.get(ref)
        except ray.exceptions.RayError as exc:
            if self._cancelled or isinstance(exc, ray.exceptions.TaskCancelledError):
                raise Cancelled from None
            return Ran(_failed(exc, _lost(ray, exc), self.compare.retries), 0.0)
        finally:
            with self._lock:
                self._running.discard(ref)
        return Ran(outcome, seconds)

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            running = list(self._running)
        if running:
            say(f"compare: cancelling {len(running)} running job(s); a rerun resumes them")
        for ref in running:
            import_ray().cancel(ref, force=True)


def _connect(ray: Any, address: str | None) -> None:
    """Join the cluster at ``address`` (None: RAY_ADDRESS), or start a Ray instance on this machine."""
    joining = address not in (None, "local") or (address is None and os.environ.get("RAY_ADDRESS"))
    options = {} if joining else {"include_dashboard": False}
    try:
        ray.init(address=address, logging_level=logging.WARNING, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or os.environ.get("RAY_ADDRESS")
        raise LmtError(f"cannot join the Ray cluster at {where}: {exc}", field="compare.ray_address") from None


def _fit(have: float, each: float) -> int | float:
    return math.inf if each == 0 else int(have // each + 1e-9)


def _lost(ray: Any, exc: Exception) -> bool:
    """Whether ``exc`` says the task's worker was lost (rather than the task failing)."""
    errors = ray.exceptions
    return isinstance(exc, errors.WorkerCrashedError | errors.NodeDiedError | errors.OutOfMemoryError)


def _failed(exc: Exception, lost: bool, retries: int) -> dict[str, str]:
    """The outcome of a task that did not come back: its worker lost once more than Ray retried it, or an error
    that ``run_job`` did not catch (the row is recorded as failed, and a rerun runs it again)."""
    first = next(iter(str(exc).strip().splitlines()), "")
    why = f"its worker was lost {retries + 1} time(s) (compare.retries: {retries}); " if lost else ""
    return {"error": f"{why}{type(exc).__name__}: {first}", "traceback": str(exc)}
