"""Experiment trackers (``train.report_to``), through accelerate's tracker classes.

A run is one tracker run: the resolved config as hyperparameters (dotted keys), then from the training
loop the loss and learning rate every ``train.logging_steps`` optimizer steps and every dev metric per
epoch, and at the end the final dev / test metrics and the costs. Its experiment (project) is
``train.experiment``, else the run folder's name; compare files its rows under one experiment, tagged with
variant, encoder, seed and training-set size, and adds the verdict as a run of its own.

TensorBoard writes into ``<output_dir>/logs`` (replaced by a fresh run, kept by ``--resume``); MLflow
follows ``MLFLOW_TRACKING_URI`` (and mlflow's own default where it is unset); the others their usual
settings. A tracker whose package is missing is a ConfigError that names the ``pip install``.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from accelerate.tracking import LOGGER_TYPE_TO_CLASS, GeneralTracker, MLflowTracker, TensorBoardTracker

from lmtransfer.config.schema import RunConfig
from lmtransfer.config.variants import slug
from lmtransfer.core.atomic import remove_dir
from lmtransfer.core.choices import TRACKER_PACKAGES
from lmtransfer.core.devices import make_accelerator
from lmtransfer.runs.results import TrainResult

LOGS = "logs"  # TensorBoard's folder in a run directory


def run_name(config: RunConfig) -> str:
    """A compare row's variant/encoder/seed-N (from its tags), else the run folder's name."""
    tags = config.train.tags
    if {"variant", "encoder", "seed"} <= tags.keys():
        return f"{tags['variant']}/{slug(tags['encoder'])}/seed-{tags['seed']}"
    return Path(config.output_dir).name


def experiment_of(config: RunConfig) -> str:
    return config.train.experiment or Path(config.output_dir).name


def check_installed(names: Sequence[str], error) -> None:
    """``error(field, message)`` for the first tracker whose package is not installed."""
    modules = {"tensorboard": "tensorboard", "comet_ml": "comet_ml"}
    for name in names:
        if importlib.util.find_spec(modules.get(name, name)) is None:
            raise error("train.report_to", f"tracker '{name}' needs its package: pip install {TRACKER_PACKAGES[name]}")


def make_trackers(
    names: Sequence[str], experiment: str, run: str, tags: dict[str, str], logging_dir: Path
) -> list[GeneralTracker]:
    """accelerate tracker objects for ``names``, each filing run ``run`` under ``experiment``."""
    trackers: list[GeneralTracker] = []
    for name in names:
        if name == "tensorboard":
            trackers.append(TensorBoardTracker(run, logging_dir))
        elif name == "mlflow":
            trackers.append(MLflowTracker(experiment_name=experiment, run_name=run, tags=tags or None))
        elif name == "wandb":
            trackers.append(
                LOGGER_TYPE_TO_CLASS[name](experiment, name=run, tags=[f"{k}:{v}" for k, v in tags.items()])
            )
        else:  # comet_ml, aim, clearml, dvclive: accelerate's defaults, the experiment as their project
            cls = LOGGER_TYPE_TO_CLASS[name]
            trackers.append(cls(experiment, logging_dir) if cls.requires_logging_directory else cls(experiment))
    return trackers


def trackers_for(config: RunConfig, resume: bool = False) -> list[GeneralTracker]:
    """The trackers of ``config.train.report_to`` (none by default), their packages checked first. A fresh
    run starts its TensorBoard folder anew; a resumed one goes on writing into it."""
    names = config.train.report_to
    if not names:
        return []
    check_installed(names, config.error)
    logs = Path(config.output_dir) / LOGS
    if not resume:
        remove_dir(logs)
    return make_trackers(names, experiment_of(config), run_name(config), config.train.tags, logs)


def hyperparameters(config: RunConfig) -> dict[str, Any]:
    """The resolved config as flat ``section.field`` values (lists and mappings as JSON text)."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                walk(f"{prefix}{key}.", inner)
        elif isinstance(value, list | dict):
            flat[prefix.rstrip(".")] = json.dumps(value)
        else:
            flat[prefix.rstrip(".")] = value

    walk("", config.model_dump(mode="json", exclude={"compare"}))
    return flat


def begin(acc: Accelerator, config: RunConfig) -> None:
    """Start the accelerator's trackers with the config as hyperparameters (nothing when it has none)."""
    if acc.log_with:
        acc.init_trackers(experiment_of(config), config=hyperparameters(config))


def numbers(prefix: str, values: dict[str, Any] | None) -> dict[str, float]:
    """The numbers of a metrics or costs dict, keyed ``prefix/name`` (tables and text left out)."""
    return {
        f"{prefix}/{k}": v for k, v in (values or {}).items() if isinstance(v, int | float) and not isinstance(v, bool)
    }


def finish(acc: Accelerator, result: TrainResult) -> None:
    """Log the final dev / test metrics and the costs, and close the trackers."""
    if not acc.trackers:
        return
    step = result.costs.loop.optimizer_steps if result.costs.loop else 0
    final = {**numbers("final/dev", result.dev), **numbers("final/test", result.test)}
    acc.log({**final, **numbers("costs", result.costs.to_json())}, step=step)
    close(acc)


def close(acc: Accelerator) -> None:
    """End the trackers' runs. (Not ``acc.end_training``: that also takes down the process group, which a
    run under ``accelerate launch`` may still need.)"""
    for tracker in acc.trackers:
        tracker.finish()
    acc.trackers.clear()


def log_summary(
    names: Sequence[str], experiment: str, text: str, files: Sequence[Path], logging_dir: Path, error
) -> None:
    """A run named "verdict" in ``experiment``: ``text`` (and ``files`` as artifacts, where the tracker keeps
    files, as MLflow does), for a comparison's verdict and report."""
    check_installed(names, error)
    remove_dir(logging_dir)
    trackers = make_trackers(names, experiment, "verdict", {"kind": "verdict"}, logging_dir)
    acc = make_accelerator("no", 1, trackers)
    acc.init_trackers(experiment)
    for tracker in acc.trackers:
        if hasattr(tracker, "log_artifact"):
            for path in files:
                tracker.log_artifact(str(path))
        else:
            tracker.log({"verdict": text}, step=0)
    close(acc)
