"""The Python API, one function per CLI command: extract, train, evaluate, predict.

from lmtransfer import load_config, train, evaluate, predict
result = train(load_config("configs/bbc.yaml", ["strategy=finetune"]))
predict(result.directory, ["Shares rose sharply in early trading."])
"""

from __future__ import annotations

import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState

from lmtransfer.config import RunConfig
from lmtransfer.data import ClassificationData, Split, check_labels, load_classification
from lmtransfer.encoders import Encoder, load_encoder
from lmtransfer.extraction import Extraction
from lmtransfer.extraction import extract as extract_to_cache
from lmtransfer.features import EncoderFeatures, FeatureSpec
from lmtransfer.layers import resolve_layers
from lmtransfer.loop import LoopArgs, fit, predict_outputs, seed_everything
from lmtransfer.metrics import classification_metrics
from lmtransfer.runs import Run, save_run
from lmtransfer.sources import CachedFeatureDataset, TextDataset
from lmtransfer.strategies import LiveClassifier, build_model, export_encoder, trainable_parameters

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


def _encoder(config: RunConfig) -> Encoder:
    enc = config.encoder
    return load_encoder(
        enc.model, trust_remote_code=enc.trust_remote_code, revision=enc.revision, allow_pickle=enc.allow_pickle
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
    encoder: Encoder, split: Split, spec: FeatureSpec, config: RunConfig, name: str, progress: bool
) -> Extraction:
    f = config.features
    return extract_to_cache(
        encoder,
        split.texts,
        spec,
        config.resolved_cache_dir(),
        dtype=f.dtype,
        batch_size=f.batch_size,
        shard_size=f.shard_size,
        progress=progress,
        desc=name,
        compute=f.compute,
    )


def extract(config: RunConfig, splits: Sequence[str] = SPLITS, progress: bool = True) -> dict[str, Extraction]:
    """Extract (or find cached) features for the config's data splits."""
    data = load_classification(config.data)
    encoder = _encoder(config)
    spec = feature_spec(config, encoder)
    return {name: _extract(encoder, getattr(data, name), spec, config, name, progress) for name in splits}


@dataclass
class TrainResult:
    directory: Path
    metrics: dict[str, Any]
    model: torch.nn.Module  # the trained model, in memory (mix + head, with its encoder when live)


def _label_ids(split: Split, labels: list[str]) -> np.ndarray:
    lookup = {label: i for i, label in enumerate(labels)}
    return np.array([lookup[label] for label in split.labels or []], dtype=np.int64)


def _datasets(config, data, encoder, spec, acc, progress) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per split: cached features (feature-based) or tokenised text (live encoder); extraction costs."""
    labels = {name: _label_ids(getattr(data, name), data.labels) for name in SPLITS}
    if config.strategy != "feature":
        return {
            n: TextDataset(encoder.tokenizer, getattr(data, n).texts, spec.max_length, labels[n]) for n in SPLITS
        }, {}
    began = time.perf_counter()
    with acc.main_process_first():  # one process extracts; the others then find the cache complete
        done = {
            n: _extract(encoder, getattr(data, n), spec, config, n, progress and acc.is_main_process) for n in SPLITS
        }
    tokens = sum(ex.tokens for ex in done.values())
    seconds = time.perf_counter() - began
    costs = {
        "extract_seconds": seconds,
        "extract_tokens": tokens,
        "extract_tokens_per_second": tokens / seconds if tokens else None,
        "cache_bytes": sum(ex.cache.nbytes for ex in done.values()),
        "caches": {n: str(ex.cache.directory) for n, ex in done.items()},
    }
    return {n: CachedFeatureDataset(ex.cache, labels[n]) for n, ex in done.items()}, costs


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
    """Train the config's strategy end to end, evaluate on dev and test, write the run directory.

    With ``resume``, a run killed midway continues from its latest checkpoint.
    """
    data: ClassificationData = load_classification(config.data)  # all input checks happen before any write
    encoder = _encoder(config)
    spec = feature_spec(config, encoder)
    acc = accelerator or make_accelerator(config)
    began = time.perf_counter()
    datasets, costs = _datasets(config, data, encoder, spec, acc, progress)
    seed_everything(config.train.seed)  # the head's initial weights are part of what the seed fixes
    model, groups = build_model(config, encoder, spec, len(data.labels))
    score = lambda out, y: classification_metrics(y, out.argmax(axis=1), data.labels)  # noqa: E731
    fitted = fit(
        model,
        datasets["train"],
        datasets["dev"],
        loss_fn=F.cross_entropy,
        evaluate=score,
        args=loop_args(config, progress and acc.is_main_process, resume),
        groups=groups,
        accelerator=acc,
    )
    eval_began = time.perf_counter()
    metrics = {n: score(*predict_outputs(model, datasets[n], config.train.batch_size, acc)) for n in ("dev", "test")}
    classifier = model.classifier if isinstance(model, LiveClassifier) else model
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
        best_epoch=fitted.best_epoch,
        history=fitted.history,
        sizes={n: len(getattr(data, n)) for n in SPLITS},
        costs=costs,
    )
    directory = Path(config.output_dir)
    if acc.is_main_process:
        directory = _save(config, encoder, spec, classifier, data.labels, metrics)
    acc.wait_for_everyone()
    return TrainResult(directory, metrics, model)


def _save(config, encoder, spec, classifier, labels, metrics) -> Path:
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
        classifier,
        labels,
        info,
        metrics,
        export=None if config.strategy == "feature" else export,
    )


def _live(run: Run, encoder: Encoder) -> LiveClassifier:
    """The run's head on its encoder, live; a feature run's features are rounded as in its cache."""
    spec = feature_spec(run.config, encoder)
    feature_run = run.own_encoder is None
    rounding = run.config.features.dtype if feature_run else None
    compute = run.config.features.compute if feature_run else "float32"
    return LiveClassifier(
        EncoderFeatures(encoder.freeze().model, spec, encoder.uses_token_type_ids, compute), run.model, rounding
    )


def evaluate(run_dir: str | Path, data: Split | None = None, progress: bool = True) -> dict[str, Any]:
    """Metrics of a trained run on ``data`` (default: the test split its config describes)."""
    run = Run.load(run_dir)
    if data is None:
        data = load_classification(run.config.data).test
    check_labels(data, run.labels, run.config.data.label_column)
    encoder = run.load_encoder()
    labels = _label_ids(data, run.labels)
    batch = run.config.train.batch_size
    if run.own_encoder is None:  # feature-based: features come from (and go to) the cache
        cache = _extract(encoder, data, feature_spec(run.config, encoder), run.config, "evaluate", progress).cache
        outputs, y = predict_outputs(run.model, CachedFeatureDataset(cache, labels), batch)
    else:  # a fine-tuned encoder is the run's own: no point caching its features
        dataset = TextDataset(encoder.tokenizer, data.texts, run.config.encoder.max_length, labels)
        outputs, y = predict_outputs(_live(run, encoder), dataset, batch)
    return classification_metrics(y, outputs.argmax(axis=1), run.labels)


def predict(run_dir: str | Path, texts: Sequence[str], batch_size: int = 64) -> list[dict[str, Any]]:
    """Label and class probabilities for each text, computed live with the run's encoder."""
    run = Run.load(run_dir)
    encoder = run.load_encoder()
    dataset = TextDataset(encoder.tokenizer, texts, run.config.encoder.max_length)
    logits, _ = predict_outputs(_live(run, encoder), dataset, batch_size)
    probs = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    return [
        {"label": run.labels[int(p.argmax())], "probabilities": dict(zip(run.labels, map(float, p)))} for p in probs
    ]
