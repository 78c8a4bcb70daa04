"""The child side of ``lmtransfer compare``: one row (train, then time live prediction), or one shared
extraction, in a process of its own, so that the peak memory it reports is that row's alone.

    python -m lmtransfer.compare.worker JOB.json RESULT.json

JOB holds ``{"kind": "row" | "extract" | "adopt", "configs": [...], "progress": bool, "threads": int,
"inference_examples": int}``, with ``"prune"`` (a search trial's ``PruneSpec``) or ``"trial_dir"`` (the trial
an ``adopt`` job makes into its row's run); RESULT
gets the outcome, or ``{"error": ..., "traceback": ...}`` when it failed.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmtransfer import api
from lmtransfer.compare.intervals import Bootstrap
from lmtransfer.compare.pruning import PruneSpec
from lmtransfer.config.build import build, changed
from lmtransfer.config.layers import resolve_layers
from lmtransfer.config.schema import RunConfig
from lmtransfer.core.atomic import atomic_write_json
from lmtransfer.core.devices import peak_rss_bytes
from lmtransfer.data.splits import Split
from lmtransfer.runs.adopt import adopt_run, run_units
from lmtransfer.runs.kinds import load_run, trainer_for
from lmtransfer.runs.results import UNITS_SUFFIX
from lmtransfer.runs.way import TrainOptions
from lmtransfer.tasks.base import Task
from lmtransfer.tasks.table import read_task_data, task_for
from lmtransfer.tasks.units import Units
from lmtransfer.training.loop import AfterEvaluation
from lmtransfer.training.setup import config_encoder

INFERENCE_SAMPLE = 500  # dev items whose live prediction is timed


def run_job(job: dict[str, Any], after_evaluation: AfterEvaluation | None = None) -> dict[str, Any]:
    """Do one job and return its outcome; an exception becomes ``{"error", "traceback"}``. ``after_evaluation``
    (a row run in the parent: a search's trial) may stop its training early."""
    try:
        if job.get("threads"):
            torch.set_num_threads(int(job["threads"]))
        configs = [build(c) for c in job["configs"]]
        if job["kind"] == "extract":
            return extract_union(configs, bool(job.get("progress")))
        sample = int(job.get("inference_examples", INFERENCE_SAMPLE))
        if job["kind"] == "adopt":
            return adopt_row(configs[0], job["trial_dir"], sample)
        if job.get("prune"):  # a search's trial in a child: its pruner, made from what the parent knew
            after_evaluation = PruneSpec.from_json(job["prune"]).build()
        options = TrainOptions(progress=bool(job.get("progress")), after_evaluation=after_evaluation)
        return train_row(configs[0], options, sample)
    except Exception as exc:  # the parent records the row as failed and goes on
        return {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=20)}


def extract_union(configs: list[RunConfig], progress: bool) -> dict[str, Any]:
    """Extract the union of the configs' layers (they differ only in layers and what is trained) once,
    so that each of their runs then reads its own layers from that cache."""
    first = configs[0]
    encoder = config_encoder(first)
    layers = sorted({i for c in configs for i in resolve_layers(c.features.layers, encoder.num_layers)})
    began = time.perf_counter()
    done = api.extract(changed(first, {"features.layers": layers}), progress=progress)
    return {
        "layers": layers,
        "seconds": time.perf_counter() - began,
        "caches": {name: str(ex.cache.directory) for name, ex in done.items()},
        "extracted": sum(ex.examples for ex in done.values()),  # 0: the caches were complete already
        "bytes": sum(ex.cache.nbytes for ex in done.values()),
    }


def train_row(config: RunConfig, options: TrainOptions, inference_examples: int = INFERENCE_SAMPLE) -> dict[str, Any]:
    """Train the row's run, time live prediction on a dev sample, and return the row's measurements."""
    began = time.perf_counter()
    result = trainer_for(config)(read_task_data(config), options=options)
    inference = inference_throughput(result.directory, inference_examples) if inference_examples else None
    costs = result.costs
    return {
        "strategy": config.strategy,
        "task": config.task,
        "metric": result.config.train.metric,
        "dev": _scalars(result.dev),
        "test": _scalars(result.test),
        "seconds": {
            "extraction": costs.extract_seconds,  # the parent puts what making the features took in
            "extraction_made": costs.extraction.made_seconds if costs.extraction else None,
            "training": costs.train_seconds,
            "evaluation": costs.eval_seconds,
            "wall": time.perf_counter() - began,
        },
        "extraction_shared": costs.extraction_shared,
        "caches": costs.caches,
        "peak_rss_bytes": peak_rss_bytes(),
        "cache_bytes": costs.cache_bytes,
        "trainable_parameters": costs.trainable_parameters,
        "inference": inference,
        "sizes": result.sizes,
        "labelled_examples": costs.train_examples,
        "prompt_tokens": costs.prompting.tokens_per_example if costs.prompting else None,
        "best_epoch": result.best_epoch,
        "history": result.history,
        **({"pruned_step": result.pruned_step} if result.pruned_step is not None else {}),
        "convergence": result.convergence.to_json() if result.convergence is not None else None,
        "layer_weights": result.layer_weights,
        "units": {split: str(result.directory / "predictions" / f"{split}{UNITS_SUFFIX}") for split in result.units},
        "intervals": row_intervals(result.units, task_for(result.config).metrics),
    }


def adopt_row(config: RunConfig, trial_dir: str, inference_examples: int = INFERENCE_SAMPLE) -> dict[str, Any]:
    """The row of ``config`` from the search trial that trained the same run (``runs.adopt``): its test split
    scored (and counted in its sizes), its live prediction timed; what training measured comes from the trial's
    row (the parent's)."""
    began = time.perf_counter()
    directory, test = adopt_run(trial_dir, config)
    units = run_units(directory)
    inference = inference_throughput(directory, inference_examples) if inference_examples else None
    sizes = json.loads((directory / "metrics.json").read_text(encoding="utf-8")).get("sizes")
    return {
        "test": _scalars(test) if test else None,
        **({"sizes": sizes} if sizes else {}),  # the trial's, with test's
        "units": {split: str(directory / "predictions" / f"{split}{UNITS_SUFFIX}") for split in units},
        "intervals": row_intervals(units, task_for(config).metrics),
        "inference": inference,
        "adopt_seconds": time.perf_counter() - began,
    }


def row_intervals(units: dict[str, Units], metrics: tuple[str, ...]) -> dict[str, dict[str, list[float]]]:
    """The 95% bootstrap interval of each of the task's metrics on each split, for this seed's run alone
    (the report's intervals resample the seeds too, and pair the variants)."""
    out = {}
    for split, found in units.items():
        boot = Bootstrap(len(found))
        out[split] = {m: boot.interval([found], m).as_list() for m in metrics if m in found.full()}
    return out


def inference_throughput(run_dir: Path, sample: int = INFERENCE_SAMPLE) -> dict[str, Any]:
    """Examples/s of live prediction from raw inputs (tokenise, encode, head, decode) on the first
    ``sample`` dev items, timed after the run and its encoder are loaded."""
    run = load_run(run_dir)
    items = _dev_sample(run.task, sample)
    run.ready()
    began = time.perf_counter()
    run.predict(items)
    seconds = time.perf_counter() - began
    return {"examples": len(items), "seconds": seconds, "examples_per_second": len(items) / seconds}


def _dev_sample(task: Task, sample: int) -> Split:
    dev = task.load()["dev"]
    return dev.subset(np.arange(min(sample, len(dev))))


def _scalars(metrics: dict[str, Any] | None) -> dict[str, float] | None:
    """The numbers of a metrics dict (per-class tables left out)."""
    if metrics is None:
        return None
    return {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def main(argv: list[str]) -> int:
    job_path, result_path = argv
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    outcome = run_job(job)
    atomic_write_json(result_path, outcome)
    return 1 if "error" in outcome else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
