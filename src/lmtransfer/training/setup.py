"""What a resolved RunConfig asks of the layers below, which take plain arguments: its encoder, its feature
spec checked against that encoder, its extraction settings, its accelerator and its loop arguments.

This is where a config meets the code that does the work; below here nothing reads a whole config.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from accelerate import Accelerator

from lmtransfer.config.layers import resolve_layers
from lmtransfer.config.schema import RunConfig
from lmtransfer.core.caches import cache_root
from lmtransfer.core.choices import BAG_OF_WORDS, CAUSAL_SENTENCE_POOLINGS, SCRATCH, listed
from lmtransfer.core.devices import make_accelerator
from lmtransfer.core.threads import busy_cpu_warning
from lmtransfer.data.examples import Example
from lmtransfer.encoders.encoder import Encoder
from lmtransfer.encoders.loading import load_encoder
from lmtransfer.encoders.static import scratch_model
from lmtransfer.features.extraction import Extraction, extract
from lmtransfer.features.pooling import FeatureSpec
from lmtransfer.training.loop import LoopArgs


def config_encoder(config: RunConfig, train_texts: Sequence[str] | None = None) -> Encoder:
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


def feature_spec(config: RunConfig, encoder: Encoder) -> FeatureSpec:
    """The config's feature choice, checked against this encoder (bad layers name the config line)."""
    try:
        layers = resolve_layers(config.features.layers, encoder.num_layers)
    except ValueError as exc:
        raise config.error("features.layers", str(exc)) from None
    f, enc = config.features, config.encoder
    if encoder.causal and f.granularity == "sentence" and f.pooling not in CAUSAL_SENTENCE_POOLINGS:
        raise config.error(
            "features.pooling",
            f"'{f.pooling}' reads the first token, and a causal LM's first token has seen nothing of the text: "
            f"use {listed(CAUSAL_SENTENCE_POOLINGS)}",
        )
    stride = enc.stride if enc.long_text == "windows" else None
    return FeatureSpec(tuple(layers), f.granularity, f.pooling, enc.max_length, stride)


def window_cap(config: RunConfig) -> int | None:
    """Windows a text is read in at most: ``encoder.max_windows`` where the encoder trains (each window is
    a pass through it), all of them for a frozen one (its features are cached)."""
    return config.encoder.max_windows if config.strategy != "feature" else None


def extract_for(
    config: RunConfig, encoder: Encoder, examples: Sequence[Example], spec: FeatureSpec, name: str, progress: bool
) -> Extraction:
    """Features of ``examples`` in the config's cache, with its storage, compute and device settings."""
    f = config.features
    return extract(
        encoder,
        examples,
        spec,
        cache_root(config.cache_dir),
        dtype=f.dtype,
        batch_size=f.batch_size,
        shard_size=f.shard_size,
        progress=progress,
        desc=name,
        compute=f.compute,
        device=f.device,
        backend=f.backend,
        quantize=f.quantize,
    )


def accelerator_for(config: RunConfig, trackers: list | None = None) -> Accelerator:
    """The config's devices and mixed precision, logging to ``trackers`` (accelerate tracker objects)."""
    return make_accelerator(config.train.mixed_precision, config.train.grad_accum, trackers)


def loop_args(config: RunConfig, progress: bool, resume: bool) -> LoopArgs:
    t = config.train
    return LoopArgs(
        epochs=t.epochs,
        min_steps=t.min_steps,
        eval_steps=t.eval_steps,
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
        logging_steps=t.logging_steps,
        resume=resume,
        progress=progress,
    )


def warn_if_cpu_busy(progress: bool) -> None:
    """Say so (on stderr) when other processes already load the CPU that torch's threads will run on."""
    message = busy_cpu_warning() if progress else None
    if message:
        print(f"warning: {message}", file=sys.stderr)
