"""The Python API, one function per CLI command: extract, train, evaluate, predict, for every task.

from lmtransfer import load_config, train, evaluate, predict
result = train(load_config("configs/bbc.yaml", ["strategy=finetune"]))
predict(result.directory, ["Shares rose sharply in early trading."])
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState

from lmtransfer.bow import BagOfWordsRun, is_bag_of_words_run, train_bag_of_words
from lmtransfer.config import BAG_OF_WORDS, SCRATCH, RunConfig
from lmtransfer.encoders import Encoder, load_encoder
from lmtransfer.errors import LmtError
from lmtransfer.extraction import Extraction
from lmtransfer.extraction import extract as extract_to_cache
from lmtransfer.features import EncoderFeatures, FeatureSpec
from lmtransfer.layers import resolve_layers
from lmtransfer.loop import LoopArgs, fit, predict_outputs, seed_everything
from lmtransfer.runs import Run, save_run
from lmtransfer.sources import CachedFeatureDataset, TextDataset
from lmtransfer.static import scratch_model
from lmtransfer.strategies import LiveModel, build_model, export_encoder, trainable_parameters
from lmtransfer.tasks import Prepared, Task, task_for
from lmtransfer.threads import busy_cpu_warning

SPLITS = ("train", "dev", "test")


def peak_memory() -> dict[str, int]:
    """Peak resident memory of this process, and of the GPU where there is one (bytes)."""
    peak = {"peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}  # Linux: KiB
    if torch.cuda.is_available():
        peak["peak_gpu_bytes"] = int(torch.cuda.max_memory_allocated())
    return peak


def peak_rss_bytes() -> int:
    return peak_memory()["peak_rss_bytes"]


def feature_spec(config: RunConfig, encoder: Encoder) -> FeatureSpec:
    """The config's feature choice, checked against this encoder (bad layers name the config line)."""
    try:
        layers = resolve_layers(config.features.layers, encoder.num_layers)
    except ValueError as exc:
        raise config.error("features.layers", str(exc)) from None
    f = config.features
    return FeatureSpec(tuple(layers), f.granularity, f.pooling, config.encoder.max_length)


def _encoder(config: RunConfig, train_texts: Sequence[str] | None = None) -> Encoder:
    """The config's encoder; vectors trained from scratch are built over ``train_texts`` (train only)."""
    enc = config.encoder
    if enc.model in BAG_OF_WORDS:
        raise config.error("encoder.model", f"'{enc.model}' features are built in memory by train; nothing to extract")
    if enc.model == SCRATCH:
        if train_texts is None:
            raise config.error("encoder.model", "'scratch' vectors are built from the training data, by train only")
        model, tokenizer = scratch_model(train_texts, enc.dim, enc.min_count, config.train.seed)
        return Encoder(SCRATCH, SCRATCH, model, tokenizer)
    return load_encoder(
        enc.model,
        trust_remote_code=enc.trust_remote_code,
        revision=enc.revision,
        allow_pickle=enc.allow_pickle,
        oov=enc.oov,
    )


def make_accelerator(config: RunConfig) -> Accelerator:
    """Devices and processes from accelerate; bf16 autocast where the GPU has it (``mixed_precision: auto``).

    Without a GPU the processes run on the CPU and talk over gloo, so that
    ``accelerate launch --multi_gpu --num_processes 2 -m lmtransfer train ...`` also works on a CPU machine.
    """
    precision = config.train.mixed_precision
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    # accelerate keeps its settings in process-wide singletons; a second run in the same process (the
    # Python API, a notebook) may ask for other ones. The process group itself (PartialState) is kept.
    AcceleratorState._reset_state()
    GradientState._reset_state()
    return Accelerator(
        mixed_precision=precision,
        gradient_accumulation_steps=config.train.grad_accum,
        cpu=not torch.accelerator.is_available(),
    )


def _extract(
    encoder: Encoder, examples: Sequence[Any], spec: FeatureSpec, config: RunConfig, name: str, progress: bool
) -> Extraction:
    f = config.features
    return extract_to_cache(
        encoder,
        examples,
        spec,
        config.resolved_cache_dir(),
        dtype=f.dtype,
        batch_size=f.batch_size,
        shard_size=f.shard_size,
        progress=progress,
        desc=name,
        compute=f.compute,
        device=f.device,
    )


def _read(config: RunConfig) -> tuple[Task, dict[str, Any], list[str]]:
    """The task, its splits as read and checked, and its output labels: every input check, no writes."""
    task = task_for(config)
    raw = task.load()
    labels = task.fit_labels(raw["train"])
    for name, split in raw.items():
        if name != "train":
            task.check(split, labels)
    return task, raw, labels


def warn_if_cpu_busy(progress: bool) -> None:
    """Say so (on stderr) when other processes already load the CPU that torch's threads will run on."""
    message = busy_cpu_warning() if progress else None
    if message:
        print(f"warning: {message}", file=sys.stderr)


def extract(config: RunConfig, splits: Sequence[str] = SPLITS, progress: bool = True) -> dict[str, Extraction]:
    """Extract (or find cached) features for the config's data splits, as its task feeds them to the encoder."""
    task, raw, labels = _read(config)
    warn_if_cpu_busy(progress)
    encoder = _encoder(config)
    spec = feature_spec(config, encoder)
    done = {}
    for name in (n for n in splits if n in raw):
        examples = task.prepare(raw[name], encoder.tokenizer, labels).examples
        done[name] = _extract(encoder, examples, spec, config, name, progress)
    return done


@dataclass
class TrainResult:
    directory: Path
    metrics: dict[str, Any]
    model: torch.nn.Module  # the trained model, in memory (mix + head, with its encoder when live)


def _check_words(prepared: Prepared, rows: Sequence[int] | np.ndarray, name: str) -> None:
    """Every word of every tagging window must have come out of the encoder with a vector."""
    for i, (example, count) in enumerate(zip(prepared.examples, rows)):
        if len(example) != count:
            raise LmtError(
                f"{name}: window {i} has {len(example)} words but the encoder gave {count} word vectors "
                "(a tokenizer that splits words differently alone and in context?); lower encoder.max_length"
            )


def _datasets(config, task, prepared, encoder, spec, acc, progress) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per split: cached features (feature-based) or tokenised examples (live encoder); extraction costs."""
    if config.strategy != "feature":
        out = {}
        for n, p in prepared.items():
            out[n] = TextDataset(encoder.tokenizer, p.examples, spec.max_length, p.targets, spec.granularity)
            if spec.granularity == "word":
                _check_words(p, [len(s) for s in out[n].encoding.spans], n)
        return out, {}
    began = time.perf_counter()
    with acc.main_process_first():  # one process extracts; the others then find the cache complete
        show = progress and acc.is_main_process
        done = {n: _extract(encoder, p.examples, spec, config, n, show) for n, p in prepared.items()}
    tokens = sum(ex.tokens for ex in done.values())
    seconds = time.perf_counter() - began
    costs = {
        "extract_seconds": seconds,
        "extract_tokens": tokens,
        "extract_tokens_per_second": tokens / seconds if tokens else None,
        "cache_bytes": sum(ex.cache.nbytes for ex in done.values()),
        "caches": {n: str(ex.cache.directory) for n, ex in done.items()},
    }
    datasets = {n: CachedFeatureDataset(ex.cache, prepared[n].targets) for n, ex in done.items()}
    if spec.granularity == "word":
        for n, d in datasets.items():
            _check_words(prepared[n], d.lengths, n)
    return datasets, costs


def loop_args(config: RunConfig, progress: bool, resume: bool) -> LoopArgs:
    t = config.train
    return LoopArgs(
        epochs=t.epochs,
        batch_size=t.batch_size,
        lr=t.lr,
        weight_decay=t.weight_decay,
        warmup_ratio=t.warmup_ratio,
        grad_accum=t.grad_accum,
        group_by_length=t.group_by_length,
        patience=t.patience,
        metric=t.metric,
        max_grad_norm=t.max_grad_norm,
        seed=t.seed,
        checkpoint_dir=Path(config.output_dir) / "checkpoints",
        checkpoint_every=t.checkpoint_every,
        keep_checkpoints=t.keep_checkpoints,
        resume=resume,
        progress=progress,
    )


def train(
    config: RunConfig, progress: bool = True, resume: bool = False, accelerator: Accelerator | None = None
) -> TrainResult:
    """Train the config's task and strategy end to end, evaluate on dev and test, write the run directory
    (with dev and test predictions in the task's format). With ``resume``, a run killed midway continues
    from its latest checkpoint.
    """
    task, raw, labels = _read(config)  # all input checks happen before any write
    if config.encoder.model in BAG_OF_WORDS:  # a scikit-learn baseline: no encoder, cache or training loop
        prepared = {n: task.prepare(split, None, labels) for n, split in raw.items()}
        return train_bag_of_words(config, task, prepared, labels, time.perf_counter())
    encoder = _encoder(config, task.texts(raw["train"]) if config.encoder.model == SCRATCH else None)
    spec = feature_spec(config, encoder)
    if spec.granularity != task.granularity:
        raise config.error("features.granularity", f"task '{task.name}' needs {task.granularity} features")
    acc = accelerator or make_accelerator(config)
    warn_if_cpu_busy(progress and acc.is_main_process)
    began = time.perf_counter()
    prepared = {n: task.prepare(split, encoder.tokenizer, labels) for n, split in raw.items()}
    datasets, costs = _datasets(config, task, prepared, encoder, spec, acc, progress)
    seed_everything(config.train.seed)  # the head's initial weights are part of what the seed fixes
    task_model = task.build_model(len(spec.layers), encoder.hidden_size, labels)
    model, groups = build_model(config, encoder, spec, task_model)
    fitted = fit(
        model,
        datasets["train"],
        datasets["dev"],
        loss_fn=task.loss(task_model),
        evaluate=lambda out, _: task.score(prepared["dev"], out, task_model, labels),
        args=loop_args(config, progress and acc.is_main_process, resume),
        groups=groups,
        accelerator=acc,
    )
    eval_began = time.perf_counter()
    metrics, files = {}, {}
    for name in (n for n in ("dev", "test") if n in prepared):
        outputs, _ = predict_outputs(
            model, datasets[name], config.train.batch_size, acc, progress and acc.is_main_process
        )
        metrics[name] = task.score(prepared[name], outputs, task_model, labels)
        found = task.predictions(prepared[name], outputs, task_model, labels)
        files[f"predictions/{name}{task.prediction_suffix}"] = task.prediction_file(prepared[name], found)
    costs.update(
        strategy=config.strategy,
        trainable_parameters=trainable_parameters(model),
        train_seconds=fitted.train_seconds,
        fit_seconds=fitted.seconds,
        eval_seconds=time.perf_counter() - eval_began,
        wall_seconds=time.perf_counter() - began,
        train_examples=fitted.examples,
        train_tokens=fitted.tokens,
        optimizer_steps=fitted.steps,
        train_examples_per_second=fitted.examples / fitted.train_seconds if fitted.train_seconds else None,
        train_tokens_per_second=fitted.tokens / fitted.train_seconds if fitted.tokens else None,
        processes=acc.num_processes,
        mixed_precision=acc.mixed_precision,
        **peak_memory(),
    )
    metrics.update(
        task=task.name,
        best_epoch=fitted.best_epoch,
        history=fitted.history,
        sizes={n: p.size for n, p in prepared.items()},
        encoder_inputs={n: len(p.examples) for n, p in prepared.items()},
        costs=costs,
    )
    directory = Path(config.output_dir)
    if acc.is_main_process:
        directory = _save(config, encoder, spec, task_model, labels, metrics, files)
    acc.wait_for_everyone()
    return TrainResult(directory, metrics, model)


def _save(config, encoder, spec, task_model, labels, metrics, files) -> Path:
    info = {
        "name": encoder.name,
        "source": encoder.source,
        "tokenizer_sha256": encoder.tokenizer_hash(),
        "num_layers": encoder.num_layers,
        "hidden_size": encoder.hidden_size,
        "layers": list(spec.layers),
        "weights_sha256": encoder.weights_hash() if config.strategy == "feature" else None,
    }

    def export(folder: Path) -> None:  # fine-tuned weights go beside the head, in Hugging Face format
        info["weights_sha256"] = export_encoder(encoder, folder / "encoder").weights_hash()

    return save_run(
        config.output_dir,
        config,
        task_model,
        labels,
        info,
        metrics,
        export=None if config.strategy == "feature" else export,
        files=files,
    )


def _live(run: Run, encoder: Encoder) -> LiveModel:
    """The run's task model on its encoder, live; a feature run's features are rounded as in its cache."""
    spec = feature_spec(run.config, encoder)
    feature_run = run.own_encoder is None
    rounding = run.config.features.dtype if feature_run else None
    compute = run.config.features.compute if feature_run else "float32"
    return LiveModel(
        EncoderFeatures(encoder.freeze().model, spec, encoder.uses_token_type_ids, compute), run.model, rounding
    )


def _run_outputs(run: Run, encoder: Encoder, prepared: Prepared, progress: bool, cache: bool) -> np.ndarray:
    """Outputs for prepared examples: from the feature cache (a feature-based run, when ``cache``) or live."""
    batch = run.config.train.batch_size
    spec = feature_spec(run.config, encoder)
    if cache and run.own_encoder is None:  # feature-based: features come from (and go to) the cache
        stored = _extract(encoder, prepared.examples, spec, run.config, "evaluate", progress).cache
        return predict_outputs(run.model, CachedFeatureDataset(stored, prepared.targets), batch, progress=progress)[0]
    dataset = TextDataset(encoder.tokenizer, prepared.examples, spec.max_length, prepared.targets, spec.granularity)
    return predict_outputs(_live(run, encoder), dataset, batch, progress=progress)[0]


def evaluate(run_dir: str | Path, data: Any = None, progress: bool = True) -> dict[str, Any]:
    """Metrics of a trained run on ``data``: a file in the task's format, a split as a task reads it, or
    (default) the test split its config describes (dev where there is no test)."""
    if is_bag_of_words_run(run_dir):
        bag = BagOfWordsRun.load(run_dir)
        task = task_for(bag.config)
        prepared = task.prepare(_evaluation_split(task, data, bag.labels), None, bag.labels)
        return task.score(prepared, bag.outputs(prepared), None, bag.labels)
    run = Run.load(run_dir)
    task = task_for(run.config)
    data = _evaluation_split(task, data, run.labels)
    encoder = run.load_encoder()
    prepared = task.prepare(data, encoder.tokenizer, run.labels)
    outputs = _run_outputs(run, encoder, prepared, progress, cache=True)
    return task.score(prepared, outputs, run.model, run.labels)


def _evaluation_split(task: Task, data: Any, labels: list[str]) -> Any:
    """``data`` as a checked split: a file in the task's format, a split, or None for the config's test split
    (dev where there is none)."""
    if data is None:
        splits = task.load()
        data = splits.get("test", splits["dev"])
    elif isinstance(data, str | Path):
        data = task.read(data)
    task.check(data, labels)
    return data


def predict(run_dir: str | Path, inputs: Sequence[Any], batch_size: int | None = None) -> list[Any]:
    """Predictions for raw inputs, computed live with the run's encoder: texts (or pairs) for text tasks,
    texts or word lists for tagging, {"question", "context"} dicts for qa."""
    return _predict(run_dir, lambda task: task.parse(list(inputs)), batch_size)[2]


def predict_file(run_dir: str | Path, path: str | Path, batch_size: int | None = None) -> str:
    """Predictions for a file in the run's task format (labels, if any, ignored), as the task's own
    prediction file: JSONL for text tasks, CoNLL columns with the predicted tag added, SQuAD answers JSON."""
    task, prepared, found = _predict(run_dir, lambda task: task.read(path, labelled=False), batch_size)
    return task.prediction_file(prepared, found)


def _predict(run_dir: str | Path, read: Callable[[Task], Any], batch_size: int | None) -> tuple[Task, Prepared, list]:
    """The run's task, the split ``read`` gives, prepared, and the predictions for it."""
    if is_bag_of_words_run(run_dir):
        bag = BagOfWordsRun.load(run_dir)
        task = task_for(bag.config)
        prepared = task.prepare(read(task), None, bag.labels)
        return task, prepared, task.predictions(prepared, bag.outputs(prepared), None, bag.labels)
    run = Run.load(run_dir)
    if batch_size:
        run.config.train.batch_size = batch_size
    task = task_for(run.config)
    split = read(task)
    encoder = run.load_encoder()
    prepared = task.prepare(split, encoder.tokenizer, run.labels)
    outputs = _run_outputs(run, encoder, prepared, progress=False, cache=False)
    return task, prepared, task.predictions(prepared, outputs, run.model, run.labels)
