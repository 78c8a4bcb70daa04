"""Training an encoder run end to end, both ways and every task: the task data, read and checked, becomes
encoder examples; features come from the cache (feature-based) or a live encoder (fine-tuning, LoRA); the
task model trains in the one loop; dev and test are scored, predictions written, the run saved whole."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from accelerate import Accelerator

from lmtransfer.config.schema import RunConfig
from lmtransfer.core.choices import SCRATCH
from lmtransfer.core.devices import peak_memory
from lmtransfer.core.errors import LmtError
from lmtransfer.encoders.encoder import Encoder
from lmtransfer.features.pooling import FeatureSpec
from lmtransfer.nn.task_model import TaskModel
from lmtransfer.runs.directory import save_run
from lmtransfer.runs.results import UNITS_SUFFIX, Costs, ExtractionCosts, LoopCosts, TrainResult, describe_layers
from lmtransfer.runs.tracking import begin, close, finish, trackers_for
from lmtransfer.runs.way import TrainOptions
from lmtransfer.tasks.base import Prepared
from lmtransfer.tasks.table import TaskData
from lmtransfer.training.datasets import CachedFeatureDataset, live_dataset
from lmtransfer.training.loop import fit
from lmtransfer.training.optimizer import seed_everything
from lmtransfer.training.predict import predict_outputs
from lmtransfer.training.setup import (
    accelerator_for,
    config_encoder,
    extract_for,
    feature_spec,
    loop_args,
    warn_if_cpu_busy,
    window_cap,
)
from lmtransfer.training.strategies import build_model, export_encoder, trainable_parameters


@dataclass(frozen=True)
class EncoderWay:
    """A way that trains a task model on an encoder's hidden states: from the cache of a frozen encoder
    (``feature``), or on the live encoder that trains too (``finetune``; ``lora``, its adapters alone).
    ``training.strategies.build_model`` builds what the strategy trains."""

    name: str  # the strategy
    kind: str
    tag: str
    trains_encoder: bool  # the encoder is live and trains (else its features come from the cache)
    color: str
    baseline: bool = False

    def train(self, data: TaskData, *, options: TrainOptions) -> TrainResult:
        return train_encoder_run(data, self, options=options)


FEATURE = EncoderWay("feature", "feature-based", "feature-based", False, "#4e79a7")
FINETUNE = EncoderWay("finetune", "fine-tuning", "fine-tuned", True, "#e15759")
LORA = EncoderWay("lora", "fine-tuning", "lora", True, "#e15759")


def train_encoder_run(data: TaskData, way: EncoderWay, *, options: TrainOptions) -> TrainResult:
    """Train the task model (and, fine-tuning, the encoder) of ``data.config``; write the run directory.
    ``options.after_evaluation`` goes to the loop (``training.loop.fit``): a search's pruner."""
    config, task = data.config, data.task
    encoder = config_encoder(config, task.texts(data.splits["train"]) if config.encoder.model == SCRATCH else None)
    spec = feature_spec(config, encoder)
    if spec.granularity != task.granularity:  # (extract may take other features of classification data)
        raise config.error("features.granularity", f"task '{task.name}' needs {task.granularity} features")
    # a given accelerator brings its own trackers
    trackers = trackers_for(config, options.resume) if options.accelerator is None else []
    acc = options.accelerator or accelerator_for(config, trackers)
    if trackers:
        begin(acc, config)
    try:
        return _train(_Setting(data, way, encoder, spec, acc, bool(trackers)), options)
    except BaseException:
        if trackers:
            close(acc)  # an MLflow run left open would take the next run in as a nested one
        raise


@dataclass(frozen=True)
class _Setting:
    """What a run trains with, once its encoder, features and accelerator are settled."""

    data: TaskData
    way: EncoderWay
    encoder: Encoder
    spec: FeatureSpec
    acc: Accelerator
    tracked: bool  # the accelerator's trackers are this run's (begun here, finished here)


def _train(setting: _Setting, options: TrainOptions) -> TrainResult:
    data, way, encoder, spec, acc = setting.data, setting.way, setting.encoder, setting.spec, setting.acc
    progress, resume = options.progress, options.resume
    config, task, labels = data.config, data.task, data.labels
    main = acc.is_main_process
    warn_if_cpu_busy(progress and main)
    began = time.perf_counter()
    prepared = {n: task.prepare(split, encoder.tokenizer, labels) for n, split in data.splits.items()}
    datasets, extraction = _datasets(config, way, prepared, encoder, spec, acc, progress)
    seed_everything(config.train.seed)  # the head's initial weights are part of what the seed fixes
    task_model = task.build_model(len(spec.layers), encoder.hidden_size, labels)
    model, groups = build_model(config, encoder, spec, task_model)
    fitted = fit(
        model,
        datasets["train"],
        datasets["dev"],
        loss_fn=task.loss(task_model),
        evaluate=lambda out, _: task.score(prepared["dev"], out, task_model, labels),
        args=loop_args(config, progress and main, resume),
        groups=groups,
        accelerator=acc,
        after_evaluation=options.after_evaluation,
    )
    eval_began = time.perf_counter()
    scores, units, files = {}, {}, {}
    for name in (n for n in ("dev", "test") if n in prepared):
        outputs, _ = predict_outputs(model, datasets[name], config.train.batch_size, acc, progress and main)
        scored = task.scored(prepared[name], outputs, task_model, labels)
        scores[name], units[name] = scored.metrics, scored.units
        files[f"predictions/{name}{UNITS_SUFFIX}"] = scored.units.to_bytes()
        found = task.predictions(prepared[name], outputs, task_model, labels)
        files[f"predictions/{name}{task.prediction_suffix}"] = task.prediction_file(prepared[name], found)
    costs = Costs(
        strategy=way.name,
        trainable_parameters=trainable_parameters(model),
        train_seconds=fitted.train_seconds,
        eval_seconds=time.perf_counter() - eval_began,
        wall_seconds=time.perf_counter() - began,
        train_examples=fitted.examples,
        extraction=extraction,
        loop=LoopCosts(fitted.seconds, fitted.tokens, fitted.steps, acc.num_processes, acc.mixed_precision),
        **peak_memory(),
    )
    weights = {"layers": list(spec.layers), **task_model.mix.layer_weights()}
    result = TrainResult.of(
        config,
        model,
        scores,
        prepared,
        costs,
        describe_layers(weights),
        best_epoch=fitted.best_epoch,
        history=fitted.history,
        pruned_step=fitted.pruned_step,
        convergence=fitted.convergence(config.train.metric, config.train.patience),
        encoder_inputs={n: len(p.examples) for n, p in prepared.items()},
        layer_weights=weights,
        units=units,
    )
    if setting.tracked:  # the final numbers, and the trackers' files closed before the run folder is swapped in
        finish(acc, result)
    if main:
        _save(config, way, encoder, spec, task_model, labels, result.metrics, files)
    acc.wait_for_everyone()
    return result


def _made_seconds(seconds: list[float | None]) -> float | None:
    """What making the run's caches took, from their manifests; None if one of them did not record it."""
    return float(sum(seconds)) if all(s is not None for s in seconds) else None  # type: ignore[misc]


def _check_words(prepared: Prepared, rows: Sequence[int] | np.ndarray, name: str) -> None:
    """Every word of every tagging window must have come out of the encoder with a vector."""
    for i, (example, count) in enumerate(zip(prepared.examples, rows)):
        if len(example) != count:
            raise LmtError(
                f"{name}: window {i} has {len(example)} words but the encoder gave {count} word vectors "
                "(a tokenizer that splits words differently alone and in context?); lower encoder.max_length"
            )


def _datasets(
    config: RunConfig,
    way: EncoderWay,
    prepared: dict[str, Prepared],
    encoder: Encoder,
    spec: FeatureSpec,
    acc: Accelerator,
    progress: bool,
) -> tuple[dict[str, Any], ExtractionCosts | None]:
    """Per split: cached features (feature-based) or tokenised examples (live encoder); what extraction cost."""
    if way.trains_encoder:
        out = {n: live_dataset(encoder.tokenizer, p, spec, window_cap(config)) for n, p in prepared.items()}
        for n, p in prepared.items():
            if spec.granularity == "word":
                _check_words(p, [len(s) for s in out[n].encoding.spans], n)
            if out[n].cut and progress and acc.is_main_process:
                print(
                    f"[{n}] {out[n].cut:,} of {len(p.examples):,} texts are longer than {config.encoder.max_windows} "
                    f"windows: fine-tuning reads their first {config.encoder.max_windows} (encoder.max_windows)",
                    file=sys.stderr,
                )
        return out, None
    began = time.perf_counter()
    # every process extracts at once, each the shards no other holds (the cache's locks share them out),
    # and each returns once the cache is complete
    show = progress and acc.is_main_process
    done = {n: extract_for(config, encoder, p.examples, spec, n, show) for n, p in prepared.items()}
    costs = ExtractionCosts(
        seconds=time.perf_counter() - began,
        tokens=sum(ex.tokens for ex in done.values()),
        cache_bytes=sum(ex.cache.nbytes for ex in done.values()),
        caches={n: str(ex.cache.directory) for n, ex in done.items()},
        made_seconds=_made_seconds([ex.cache.made_seconds for ex in done.values()]),
        compute=next((ex.cache.key.get("compute") for ex in done.values()), None),
    )
    datasets = {n: CachedFeatureDataset(ex.cache, prepared[n].targets, prepared[n].sides) for n, ex in done.items()}
    if spec.granularity == "word":
        for n, d in datasets.items():
            _check_words(prepared[n], d.lengths, n)
    return datasets, costs


def _save(
    config: RunConfig,
    way: EncoderWay,
    encoder: Encoder,
    spec: FeatureSpec,
    task_model: TaskModel,
    labels,
    metrics,
    files,
):
    info = {
        "name": encoder.name,
        "source": encoder.source,
        "tokenizer_sha256": encoder.tokenizer_hash(),
        "num_layers": encoder.num_layers,
        "hidden_size": encoder.hidden_size,
        "layers": list(spec.layers),
        "weights_sha256": None if way.trains_encoder else encoder.weights_hash(),
    }

    def export(folder: Path) -> None:  # fine-tuned weights go beside the head, in Hugging Face format
        info["weights_sha256"] = export_encoder(encoder, folder / "encoder").weights_hash()

    save_run(
        config.output_dir,
        config,
        task_model,
        labels,
        info,
        metrics,
        export=export if way.trains_encoder else None,
        files=files,
        way=way,
    )
