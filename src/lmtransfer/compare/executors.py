"""Which executor runs a comparison's jobs: the one place that reads ``compare.executor``. ``local`` runs them
here, one after another (``compare.execute.LocalExecutor``); ``ray`` as Ray tasks side by side
(``compare.ray_executor.RayExecutor``, imported only then); ``auto`` is ray where ``RAY_ADDRESS`` names a
cluster and ray is installed, else local."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

from lmtransfer.compare.execute import Executor, LocalExecutor
from lmtransfer.config.schema import RunConfig


def _local(config: RunConfig, progress: bool, isolate: bool) -> Executor:
    assert config.compare is not None
    return LocalExecutor(Path(config.compare.output_dir), progress, isolate)


def _ray(config: RunConfig, progress: bool, isolate: bool) -> Executor:
    from lmtransfer.compare.ray_executor import RayExecutor

    return RayExecutor(config)


# compare.executor -> (config, progress bars, isolate) -> its executor (core.choices.EXECUTORS has the names)
EXECUTORS: dict[str, Callable[[RunConfig, bool, bool], Executor]] = {"local": _local, "ray": _ray}


def executor_name(name: str) -> str:
    """What ``compare.executor`` means here and now: ``auto`` made ray or local."""
    if name != "auto":
        return name
    joinable = bool(os.environ.get("RAY_ADDRESS")) and importlib.util.find_spec("ray") is not None
    return "ray" if joinable else "local"


def executor_for(config: RunConfig, progress: bool = True, isolate: bool = True) -> Executor:
    """The executor ``config.compare.executor`` names, not started yet (enter it to start it)."""
    assert config.compare is not None
    return EXECUTORS[executor_name(config.compare.executor)](config, progress, isolate)
