"""The Python API, one function per CLI command: extract, train, evaluate, predict.

from lmtransfer import load_config, train, evaluate, predict
result = train(load_config("configs/bbc.yaml", ["head.type=mlp"]))
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

from lmtransfer.config import RunConfig
from lmtransfer.data import ClassificationData, Split, check_labels, load_classification
from lmtransfer.encoders import Encoder, load_encoder
from lmtransfer.extraction import Extraction
from lmtransfer.extraction import extract as extract_to_cache
from lmtransfer.features import EncoderFeatures, FeatureSpec
from lmtransfer.heads import MixClassifier
from lmtransfer.layers import resolve_layers
from lmtransfer.loop import LoopArgs, fit, predict_outputs, seed_everything
from lmtransfer.metrics import classification_metrics
from lmtransfer.runs import Run, build_classifier, save_run
from lmtransfer.sources import CachedFeatureSource, TextSource


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


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
    return load_encoder(enc.model, trust_remote_code=enc.trust_remote_code, revision=enc.revision)


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
    )


def extract(
    config: RunConfig, splits: Sequence[str] = ("train", "dev", "test"), progress: bool = True
) -> dict[str, Extraction]:
    """Extract (or find cached) features for the config's data splits."""
    data = load_classification(config.data)
    encoder = _encoder(config)
    spec = feature_spec(config, encoder)
    return {name: _extract(encoder, getattr(data, name), spec, config, name, progress) for name in splits}


@dataclass
class TrainResult:
    directory: Path
    metrics: dict[str, Any]


def _label_ids(split: Split, labels: list[str]) -> np.ndarray:
    lookup = {label: i for i, label in enumerate(labels)}
    return np.array([lookup[label] for label in split.labels or []], dtype=np.int64)


def _evaluate(model: MixClassifier, source: CachedFeatureSource, labels: list[str], batch_size: int) -> dict:
    logits, y_true = predict_outputs(model, source, batch_size)
    return classification_metrics(y_true, logits.argmax(axis=1), labels)


def train(config: RunConfig, progress: bool = True) -> TrainResult:
    """Feature-based training: extract (cached) features, train scalar mix + head, write the run."""
    if config.features.granularity != "sentence":
        raise config.error("features.granularity", "text classification trains on sentence features")
    data: ClassificationData = load_classification(config.data)  # all input checks happen before any write
    encoder = _encoder(config)
    spec = feature_spec(config, encoder)
    began = time.perf_counter()
    extractions = {
        name: _extract(encoder, getattr(data, name), spec, config, name, progress) for name in ("train", "dev", "test")
    }
    extract_seconds = time.perf_counter() - began
    sources = {
        name: CachedFeatureSource(ex.cache, _label_ids(getattr(data, name), data.labels))
        for name, ex in extractions.items()
    }
    t = config.train
    seed_everything(t.seed)  # the head's initial weights are part of what the seed fixes
    model = build_classifier(config, len(spec.layers), encoder.hidden_size, len(data.labels))
    args = LoopArgs(
        t.epochs, t.batch_size, t.lr, t.weight_decay, t.patience, t.metric, t.max_grad_norm, t.seed, progress
    )
    evaluate_dev = lambda m, s: _evaluate(m, s, data.labels, t.batch_size)  # noqa: E731
    fitted = fit(model, sources["train"], sources["dev"], loss_fn=F.cross_entropy, evaluate=evaluate_dev, args=args)
    eval_began = time.perf_counter()
    metrics = {split: evaluate_dev(model, sources[split]) for split in ("dev", "test")}
    tokens = sum(ex.tokens for ex in extractions.values())
    metrics.update(
        best_epoch=fitted.best_epoch,
        history=fitted.history,
        sizes={name: len(getattr(data, name)) for name in ("train", "dev", "test")},
        costs={
            "extract_seconds": extract_seconds,
            "extract_tokens": tokens,
            "extract_tokens_per_second": tokens / extract_seconds if tokens else None,
            "train_seconds": fitted.seconds,
            "eval_seconds": time.perf_counter() - eval_began,
            "cache_bytes": sum(ex.cache.nbytes for ex in extractions.values()),
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "peak_rss_bytes": peak_rss_bytes(),
        },
    )
    encoder_info = {
        "name": encoder.name,
        "source": encoder.source,
        "weights_sha256": encoder.weights_hash(),
        "tokenizer_sha256": encoder.tokenizer_hash(),
        "num_layers": encoder.num_layers,
        "hidden_size": encoder.hidden_size,
        "layers": list(spec.layers),
        "caches": {name: str(ex.cache.directory) for name, ex in extractions.items()},
    }
    directory = save_run(config.output_dir, config, model, data.labels, encoder_info, metrics)
    return TrainResult(directory, metrics)


def evaluate(run_dir: str | Path, data: Split | None = None, progress: bool = True) -> dict[str, Any]:
    """Metrics of a trained run on ``data`` (default: the test split its config describes)."""
    run = Run.load(run_dir)
    if data is None:
        data = load_classification(run.config.data).test
    check_labels(data, run.labels, run.config.data.label_column)
    encoder = run.load_encoder()
    spec = feature_spec(run.config, encoder)
    cache = _extract(encoder, data, spec, run.config, "evaluate", progress).cache
    source = CachedFeatureSource(cache, _label_ids(data, run.labels))
    return _evaluate(run.model, source, run.labels, run.config.train.batch_size)


class LiveClassifier(torch.nn.Module):
    """Encoder features computed live, fed to the same mix + head (rounded like the cache when asked)."""

    def __init__(self, features: EncoderFeatures, classifier: MixClassifier, storage_dtype: str | None = None):
        super().__init__()
        self.features, self.classifier = features, classifier
        self.storage_dtype = None if storage_dtype is None else getattr(torch, storage_dtype)

    def forward(self, **batch: torch.Tensor) -> torch.Tensor:
        h = self.features(**batch)  # (B, L, H)
        if self.storage_dtype is not None:
            h = h.to(self.storage_dtype).float()  # the rounding a cached feature went through
        return self.classifier(h)  # (B, C)


def predict(run_dir: str | Path, texts: Sequence[str], batch_size: int = 64) -> list[dict[str, Any]]:
    """Label and class probabilities for each text, from live features of the run's frozen encoder."""
    run = Run.load(run_dir)
    encoder = run.load_encoder().freeze()
    spec = feature_spec(run.config, encoder)
    live = LiveClassifier(
        EncoderFeatures(encoder.model, spec, encoder.uses_token_type_ids), run.model, run.config.features.dtype
    )
    logits, _ = predict_outputs(live, TextSource(encoder.tokenizer, texts, spec.max_length), batch_size)
    probs = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    return [
        {"label": run.labels[int(p.argmax())], "probabilities": dict(zip(run.labels, map(float, p)))} for p in probs
    ]
