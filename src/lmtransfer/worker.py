"""The child side of ``lmtransfer compare``: one row (train, then time live prediction), or one shared
extraction, in a process of its own, so that the peak memory it reports is that row's alone.

    python -m lmtransfer.worker JOB.json RESULT.json

JOB holds ``{"kind": "row" | "extract", "configs": [...], "progress": bool, "threads": int,
"inference_examples": int}``; RESULT
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

from lmtransfer.atomic import atomic_write_json
from lmtransfer.config import RunConfig

INFERENCE_SAMPLE = 500  # dev items whose live prediction is timed


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Do one job and return its outcome; an exception becomes ``{"error", "traceback"}``."""
    try:
        if job.get("threads"):
            torch.set_num_threads(int(job["threads"]))
        configs = [RunConfig.model_validate(c) for c in job["configs"]]
        if job["kind"] == "extract":
            return extract_union(configs, bool(job.get("progress")))
        return train_row(configs[0], bool(job.get("progress")), int(job.get("inference_examples", INFERENCE_SAMPLE)))
    except Exception as exc:  # the parent records the row as failed and goes on
        return {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=20)}


def extract_union(configs: list[RunConfig], progress: bool) -> dict[str, Any]:
    """Extract the union of the configs' layers (they differ only in layers and what is trained) once,
    so that each of their runs then reads its own layers from that cache."""
    from lmtransfer import pipeline
    from lmtransfer.layers import resolve_layers

    first = configs[0]
    encoder = pipeline._encoder(first)
    layers = sorted({i for c in configs for i in resolve_layers(c.features.layers, encoder.num_layers)})
    config = first.model_copy(deep=True)
    config.features.layers = layers
    began = time.perf_counter()
    done = pipeline.extract(config, progress=progress)
    return {
        "layers": layers,
        "seconds": time.perf_counter() - began,
        "caches": {name: str(ex.cache.directory) for name, ex in done.items()},
        "extracted": sum(ex.examples for ex in done.values()),  # 0: the caches were complete already
        "bytes": sum(ex.cache.nbytes for ex in done.values()),
    }


def train_row(config: RunConfig, progress: bool, inference_examples: int = INFERENCE_SAMPLE) -> dict[str, Any]:
    """Train the row's run, time live prediction on a dev sample, and return the row's measurements."""
    from lmtransfer import pipeline

    began = time.perf_counter()
    result = pipeline.train(config, progress=progress)
    inference = inference_throughput(result.directory, inference_examples)
    metrics = result.metrics
    costs = metrics.get("costs", {})
    return {
        "strategy": config.strategy,
        "task": config.task,
        "metric": primary_metric(config),
        "dev": _scalars(metrics.get("dev")),
        "test": _scalars(metrics.get("test")),
        "seconds": {
            "extraction": costs.get("extract_seconds"),  # the parent puts the shared extraction's in
            "training": costs.get("train_seconds"),
            "evaluation": costs.get("eval_seconds"),
            "wall": time.perf_counter() - began,
        },
        "extraction_shared": costs.get("extract_tokens") == 0,  # its features were all in the cache already
        "caches": costs.get("caches", {}),
        "peak_rss_bytes": pipeline.peak_rss_bytes(),
        "cache_bytes": costs.get("cache_bytes", 0),
        "trainable_parameters": costs.get("trainable_parameters"),
        "inference": inference,
        "best_epoch": metrics.get("best_epoch"),
        "history": metrics.get("history", []),
        "layer_weights": _read_json(result.directory / "layer_weights.json"),
    }


def primary_metric(config: RunConfig) -> str:
    """The dev metric a run is judged by: ``train.metric``, else its task's default."""
    from lmtransfer.tasks import task_for

    return config.train.metric or task_for(config).metrics[0]


def inference_throughput(run_dir: Path, sample: int = INFERENCE_SAMPLE) -> dict[str, Any]:
    """Examples/s of live prediction from raw inputs (tokenise, encode, head, decode) on the first
    ``sample`` dev items, timed after the run and its encoder are loaded."""
    from lmtransfer.bow import BagOfWordsRun, is_bag_of_words_run
    from lmtransfer.pipeline import _run_outputs
    from lmtransfer.runs import Run
    from lmtransfer.tasks import task_for

    if is_bag_of_words_run(run_dir):  # a scikit-learn baseline: counts and a linear model, no encoder
        bag = BagOfWordsRun.load(run_dir)
        task = task_for(bag.config)
        items = _dev_sample(task, sample)
        began = time.perf_counter()
        prepared = task.prepare(items, None, bag.labels)
        task.predictions(prepared, bag.outputs(prepared), None, bag.labels)
    else:
        run = Run.load(run_dir)
        task = task_for(run.config)
        items = _dev_sample(task, sample)
        encoder = run.load_encoder()
        began = time.perf_counter()
        prepared = task.prepare(items, encoder.tokenizer, run.labels)
        outputs = _run_outputs(run, encoder, prepared, progress=False, cache=False)
        task.predictions(prepared, outputs, run.model, run.labels)
    seconds = time.perf_counter() - began
    return {"examples": len(items), "seconds": seconds, "examples_per_second": len(items) / seconds}


def _dev_sample(task: Any, sample: int) -> Any:
    dev = task.load()["dev"]
    return dev.subset(np.arange(min(sample, len(dev))))


def _scalars(metrics: dict[str, Any] | None) -> dict[str, float] | None:
    """The numbers of a metrics dict (per-class tables left out)."""
    if metrics is None:
        return None
    return {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def main(argv: list[str]) -> int:
    job_path, result_path = argv
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    outcome = run_job(job)
    atomic_write_json(result_path, outcome)
    return 1 if "error" in outcome else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
