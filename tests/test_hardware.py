"""Issue 19: the hardware a run names, what ``auto`` resolves to on it (bfloat16 extraction and bf16
autocast in training where the chip has native bfloat16, float32 elsewhere), and that the training loop's
autocast reaches the encoder. (Speed itself is measured in benchmarks/performance.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lmtransfer import load_config
from lmtransfer.api import train
from lmtransfer.core import devices
from lmtransfer.features.cache.reader import FeatureCache
from lmtransfer.features.extraction import extract
from lmtransfer.features.pooling import FeatureSpec, hidden_states
from tests.conftest import SENTENCES

SPEC = FeatureSpec((0, 1, 2), max_length=32)


@pytest.mark.parametrize(
    ("flags", "compute", "precision"),
    [
        ("avx2", "float32", "no"),
        ("avx2 avx512f avx512_vnni", "float32", "no"),
        ("avx2 avx512f avx512_bf16 avx512_vnni", "bfloat16", "bf16"),
        ("amx_bf16 amx_int8", "bfloat16", "bf16"),
        ("", "float32", "no"),
    ],
)
def test_auto_follows_the_cpu_flags(flags, compute, precision, monkeypatch):
    monkeypatch.setenv("LMTRANSFER_CPU_FLAGS", flags)
    assert devices.resolve_compute("auto", "cpu") == compute
    assert devices.resolve_compute("float32", "cpu") == "float32"
    assert devices.resolve_compute("bfloat16", "cpu") == "bfloat16"
    if not devices.accelerator_available():
        assert devices.auto_mixed_precision() == precision


def test_auto_resolves_into_the_cache_key(tiny_encoder, tmp_path, monkeypatch):
    """The key holds what ran, not ``auto``: a cache made under bfloat16 is not reused where auto means
    float32, and an explicit float32 request finds the float32 cache auto made on a CPU without bfloat16."""
    monkeypatch.setenv("LMTRANSFER_CPU_FLAGS", "avx2")
    plain = extract(tiny_encoder, SENTENCES, SPEC, tmp_path, compute="auto", progress=False)
    assert FeatureCache(plain.cache.directory).key["compute"] == "float32"
    again = extract(tiny_encoder, SENTENCES, SPEC, tmp_path, compute="float32", progress=False)
    assert again.examples == 0 and again.cache.directory == plain.cache.directory
    monkeypatch.setenv("LMTRANSFER_CPU_FLAGS", "avx2 avx512_bf16")
    native = extract(tiny_encoder, SENTENCES, SPEC, tmp_path, compute="auto", progress=False)
    assert native.examples == len(SENTENCES) and native.cache.directory != plain.cache.directory
    assert FeatureCache(native.cache.directory).key["compute"] == "bfloat16"


def test_float32_hidden_states_keep_the_callers_autocast(tiny_encoder):
    """compute float32 adds no autocast of its own: the training loop's bf16 autocast (mixed precision)
    reaches the encoder's matrix products. (It once switched it off, and bf16 fine-tuning ran at float32
    speed.)"""
    seen = []
    hook = tiny_encoder.model.encoder.layer[0].attention.self.query.register_forward_hook(
        lambda module, args, out: seen.append(out.dtype)
    )
    inputs = tiny_encoder.tokenizer(SENTENCES[:2], return_tensors="pt", padding=True)
    inputs = {k: inputs[k] for k in ("input_ids", "attention_mask")}
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            states = hidden_states(tiny_encoder.model, inputs, "float32")
        hidden_states(tiny_encoder.model, inputs, "float32")
        hidden_states(tiny_encoder.model, inputs, "bfloat16")
    finally:
        hook.remove()
    assert seen == [torch.bfloat16, torch.float32, torch.bfloat16]
    assert all(h.dtype == torch.float32 for h in states)  # what callers get is float32 either way


def test_bf16_fine_tuning_autocasts_the_encoder(run_overrides, tmp_path, monkeypatch):
    """train.mixed_precision: auto on a CPU with bfloat16 units fine-tunes under bf16 autocast, and says so."""
    monkeypatch.setenv("LMTRANSFER_CPU_FLAGS", "avx2 avx512_bf16")
    config = load_config(overrides=[*run_overrides, "strategy=finetune", "features.layers=last", "train.epochs=1"])
    from transformers.models.bert.modeling_bert import BertSelfAttention

    seen = []
    original = BertSelfAttention.forward

    def spy(self, hidden, *args, **kwargs):
        if self.training:
            seen.append(self.query(hidden).dtype)
        return original(self, hidden, *args, **kwargs)

    monkeypatch.setattr(BertSelfAttention, "forward", spy)
    result = train(config, progress=False)
    assert seen and set(seen) == {torch.bfloat16}
    assert result.costs.loop.mixed_precision == "bf16"


def test_metrics_name_the_hardware_and_the_resolved_compute(run_overrides, monkeypatch):
    monkeypatch.setenv("LMTRANSFER_CPU_FLAGS", "avx2 avx512f avx512_bf16 avx512_vnni sse4_2")
    result = train(load_config(overrides=run_overrides), progress=False)
    metrics = json.loads((Path(result.directory) / "metrics.json").read_text())
    hardware = metrics["hardware"]
    assert hardware["cpu"] and hardware["cores"] >= 1
    assert hardware["isa"] == ["avx2", "avx512f", "avx512_bf16", "avx512_vnni"]  # the ones that matter
    assert metrics["costs"]["extract_compute"] == "bfloat16"
    assert ("gpu" in hardware) == torch.cuda.is_available()


def test_gradient_checkpointing_trains_the_same_model(run_overrides, tmp_path):
    """Recomputing each block in the backward pass (with the same dropout masks) changes the memory, not
    the result."""
    base = [*run_overrides, "strategy=finetune", "features.layers=last", "train.epochs=1"]
    plain = train(load_config(overrides=[*base, f"output_dir={tmp_path / 'plain'}"]), progress=False)
    checkpointed = train(
        load_config(overrides=[*base, "train.gradient_checkpointing=true", f"output_dir={tmp_path / 'gc'}"]),
        progress=False,
    )
    assert checkpointed.model.features.encoder.is_activation_checkpointing  # it did recompute
    assert not plain.model.features.encoder.is_activation_checkpointing
    assert checkpointed.dev["accuracy"] == plain.dev["accuracy"]
    losses = [h.get("train_loss", 0) for h in checkpointed.history]
    assert losses == pytest.approx([h.get("train_loss", 0) for h in plain.history], rel=1e-5)


def test_attention_dropout_is_set_in_every_self_attention(run_overrides):
    from lmtransfer.training.setup import config_encoder
    from lmtransfer.training.strategies import _set_attention_dropout

    config = load_config(overrides=[*run_overrides, "strategy=finetune", "finetune.attention_dropout=0"])
    encoder = config_encoder(config)
    _set_attention_dropout(encoder, config)
    rates = [m.dropout.p for m in encoder.model.modules() if type(m).__name__.endswith("SelfAttention")]
    assert rates and set(rates) == {0.0}
    assert encoder.model.config.attention_probs_dropout_prob == 0.0
