"""The three ways to train, as what they build: which modules, which parameters train, at which rate.

- ``feature``: the scalar mix + head alone, fed cached features of a frozen encoder;
- ``finetune``: the same mix + head on a live encoder, and the encoder trains too (optionally with
  frozen embeddings, frozen bottom blocks, layer-wise learning-rate decay);
- ``lora``: the live encoder stays frozen except for LoRA adapters (``peft``) on its attention.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lmtransfer.config.schema import RunConfig
from lmtransfer.encoders.encoder import Encoder
from lmtransfer.features.cache.quantize import storage_round
from lmtransfer.features.pooling import EncoderFeatures, FeatureSpec
from lmtransfer.nn.task_model import TaskModel
from lmtransfer.training.optimizer import param_groups

# LoRA targets for model types that peft has no default for (the attention query and value maps).
LORA_TARGETS = {"mpnet": ["q", "v"]}


class LiveModel(nn.Module):
    """Encoder features computed live, fed to the same task model (combination + head) as cached ones.

    ``storage_dtype`` rounds the features the way the cache stores them, so that a feature-based run
    predicts live exactly what it was evaluated on from the cache.
    """

    def __init__(self, features: EncoderFeatures, model: TaskModel, storage_dtype: str | None = None):
        super().__init__()
        self.features, self.model = features, model
        self.storage_dtype = storage_dtype

    def forward(self, **batch: torch.Tensor) -> torch.Tensor:
        h = self.features(**batch)  # (B, L, H), or (B, T, L, H) per word / token
        if self.storage_dtype is not None:
            h = storage_round(h, self.storage_dtype)
        mask = batch.get("mask")  # (B, T) real words / tokens, for sequence tasks
        return self.model(h, mask, batch.get("windows"))  # windows: (B, S, W), for grouped texts


def encoder_blocks(model: nn.Module) -> nn.ModuleList:
    """The encoder's stack of transformer blocks: the ModuleList as long as ``num_hidden_layers`` (empty for
    static vectors, which have none)."""
    count = model.config.num_hidden_layers
    if count == 0:
        return nn.ModuleList()
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return module
    raise ValueError(f"cannot find the {count} transformer blocks of {type(model).__name__}")


def _freeze(encoder: Encoder, config: RunConfig) -> None:
    ft = config.finetune
    if ft.freeze_embeddings:
        embeddings = getattr(encoder.model, "embeddings", None) or encoder.model.get_input_embeddings()
        embeddings.requires_grad_(False)
    if ft.freeze_layers:
        blocks = encoder_blocks(encoder.model)
        if not blocks:
            raise config.error("finetune.freeze_layers", "static vectors have no transformer blocks to freeze")
        if ft.freeze_layers > len(blocks):
            raise config.error("finetune.freeze_layers", f"the encoder has only {len(blocks)} blocks")
        for block in blocks[: ft.freeze_layers]:
            block.requires_grad_(False)


def _set_attention_dropout(encoder: Encoder, config: RunConfig) -> None:
    """The dropout of the attention probabilities in every self-attention block (BERT, MPNet and their kin
    keep it as a ``dropout`` module of their ``*SelfAttention``). With dropout there, torch's fused CPU
    attention cannot be used in training and each block keeps its (batch, heads, length, length)
    probabilities for the backward pass: 6.6 of the 7.0 GB a MiniLM step took at batch 32 x 384 tokens."""
    rate = config.finetune.attention_dropout
    found = [
        module.dropout
        for module in encoder.model.modules()
        if type(module).__name__.endswith("SelfAttention") and isinstance(getattr(module, "dropout", None), nn.Dropout)
    ]
    if not found:
        raise config.error(
            "finetune.attention_dropout", f"no attention dropout found in {type(encoder.model).__name__}"
        )
    for dropout in found:
        dropout.p = rate
    if hasattr(encoder.model.config, "attention_probs_dropout_prob"):
        encoder.model.config.attention_probs_dropout_prob = rate  # what an exported encoder's config says


def _decayed_groups(encoder: Encoder, classifier: nn.Module, config: RunConfig) -> list[dict[str, Any]]:
    """Head at ``head_lr``; encoder block l at ``lr * decay^(top - l)``, embeddings one step lower still."""
    t, decay = config.train, config.finetune.layer_lr_decay
    blocks = encoder_blocks(encoder.model)
    depth = {id(p): i + 1 for i, block in enumerate(blocks) for p in block.parameters()}
    groups = param_groups(classifier, t.head_lr or t.lr, t.weight_decay)
    by_rate: dict[float, list[nn.Parameter]] = {}
    for name, p in encoder.model.named_parameters():
        if not p.requires_grad:
            continue
        level = depth.get(id(p), 0 if "embed" in name else len(blocks))  # pooler etc. count as the top
        by_rate.setdefault(t.lr * decay ** (len(blocks) - level), []).append(p)
    for rate, params in by_rate.items():
        groups += param_groups(params, rate, t.weight_decay)
    return [g for g in groups if g["params"]]


def _add_lora(encoder: Encoder, config: RunConfig) -> None:
    if encoder.num_layers == 0:
        raise config.error("strategy", "static vectors have no attention layers for LoRA: use finetune or feature")
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise config.error("strategy", "strategy 'lora' needs peft: pip install peft") from None
    targets = config.lora.target_modules or LORA_TARGETS.get(encoder.model.config.model_type)
    lora = LoraConfig(
        r=config.lora.r, lora_alpha=config.lora.alpha, lora_dropout=config.lora.dropout, target_modules=targets
    )
    try:
        encoder.model = get_peft_model(encoder.model, lora)
    except ValueError as exc:
        raise config.error("lora.target_modules", str(exc).splitlines()[0]) from None


def _checkpoint_blocks(encoder: Encoder, config: RunConfig) -> None:
    """transformers' gradient checkpointing, non-reentrant (torch's recommended kind: it works with frozen
    inputs, as LoRA's are, and with autocast)."""
    model = encoder.model
    if not (
        getattr(model, "supports_gradient_checkpointing", False)
        or getattr(model, "supports_activation_checkpointing", False)
    ):
        raise config.error("train.gradient_checkpointing", f"{type(model).__name__} does not support it")
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x's name for it
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def _head_alone(
    config: RunConfig, encoder: Encoder, spec: FeatureSpec, classifier: TaskModel
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """``feature``: the task model alone trains, on cached features."""
    return classifier, param_groups(classifier, config.train.lr, config.train.weight_decay)


def _live(config: RunConfig, encoder: Encoder, spec: FeatureSpec, classifier: TaskModel) -> LiveModel:
    """The task model on the live encoder, its attention dropout and gradient checkpointing as configured."""
    if config.finetune.attention_dropout is not None:
        _set_attention_dropout(encoder, config)
    if config.train.gradient_checkpointing:
        _checkpoint_blocks(encoder, config)
    return LiveModel(EncoderFeatures(encoder.model, spec, encoder.uses_token_type_ids), classifier)


def _fine_tuned(
    config: RunConfig, encoder: Encoder, spec: FeatureSpec, classifier: TaskModel
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """``finetune``: the encoder trains too, less what is frozen, at layer-wise rates."""
    encoder.model.requires_grad_(True)
    _freeze(encoder, config)
    model = _live(config, encoder, spec, classifier)
    return model, _decayed_groups(encoder, classifier, config)


def _with_lora(
    config: RunConfig, encoder: Encoder, spec: FeatureSpec, classifier: TaskModel
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """``lora``: the encoder's LoRA adapters train (``peft`` freezes the rest), and the task model."""
    t = config.train
    encoder.model.requires_grad_(True)
    _add_lora(encoder, config)
    model = _live(config, encoder, spec, classifier)
    return model, param_groups(encoder.model, t.lr, t.weight_decay) + param_groups(
        classifier, t.head_lr or t.lr, t.weight_decay
    )


# what each strategy builds: the model to train and its optimizer parameter groups
BUILDERS = {"feature": _head_alone, "finetune": _fine_tuned, "lora": _with_lora}


def build_model(
    config: RunConfig, encoder: Encoder, spec: FeatureSpec, classifier: TaskModel
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """The model to train for ``config.strategy`` (the task model alone, or on a live encoder) and its
    optimizer parameter groups."""
    return BUILDERS[config.strategy](config, encoder, spec, classifier)


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def export_encoder(encoder: Encoder, directory: Path) -> Encoder:
    """Save the trained encoder in Hugging Face format (LoRA merged in, adapters saved beside it).

    Returns an Encoder of the plain exported model, whose weights hash is what the run records.
    """
    model = encoder.model
    if hasattr(model, "merge_and_unload"):  # a peft model; merged in a copy, the trained model stays as it is
        model.save_pretrained(directory.parent / "adapter")
        model = copy.deepcopy(model).merge_and_unload()
    if encoder.pooler is not None and getattr(model, "pooler", False) is None:
        model.pooler = encoder.pooler  # the checkpoint's own, untrained: saved so that the export loads cleanly
        try:
            model.save_pretrained(directory, safe_serialization=True)
        finally:
            model.pooler = None
    else:
        model.save_pretrained(directory, safe_serialization=True)
    encoder.tokenizer.save_pretrained(directory)
    return Encoder(encoder.name, str(directory), model, encoder.tokenizer)
