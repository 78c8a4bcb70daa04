"""Decoder-only (causal) LMs read as encoders: how to tell one from its config, and its tokenizer made ready.

A causal LM's tokenizer often has no padding token, and its template often puts nothing between the two
texts of a pair (GPT-2, Qwen, SmolLM2 read ``a b`` as one run-on text). ``prepare_tokenizer`` fixes both once,
where the model is loaded (as an encoder, or with its LM head for prompting): the end-of-sequence token pads,
on the right (the attention mask hides it), and stands between a pair's texts where nothing else does. The
separator is written into the tokenizer's own post-processor, so it is saved with a fine-tuned encoder, the
cache key's tokenizer hash sees it, and truncation counts it.
"""

from __future__ import annotations

import json
from typing import Any

from tokenizers import Tokenizer
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES

from lmtransfer.core.errors import ModelError


def is_causal(config: Any) -> bool:
    """Whether a model config is a decoder-only LM's: its model type has a causal-LM head in transformers and no
    masked-LM head (BERT and its kin have both), and it is not an encoder-decoder. The model type survives a
    save of the base model, where ``architectures`` would no longer say ``*ForCausalLM``."""
    kind = getattr(config, "model_type", None)
    return (
        kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        and kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
        and not getattr(config, "is_encoder_decoder", False)
    )


def prepare_tokenizer(tokenizer: Any) -> Any:
    """``tokenizer`` (a causal LM's), in place: a padding token (end of sequence where it has none), padding on
    the right, and the end-of-sequence token between a pair's texts where its template puts nothing there."""
    if tokenizer.eos_token is None:
        raise ModelError("this causal LM's tokenizer has no end-of-sequence token to pad and separate with")
    if tokenizer.pad_token is None:  # most causal LMs have none: the end of sequence pads, masked out
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and not separates_pairs(backend):
        backend.post_processor = _separated(backend, tokenizer.eos_token, tokenizer.eos_token_id)
    return tokenizer


def separates_pairs(backend: Tokenizer) -> bool:
    """Whether a token the template adds stands between the two texts of a pair."""
    sides = backend.encode("a", "b").sequence_ids  # 0: first text, 1: second, None: the template's tokens
    second = sides.index(1)
    return second > 0 and sides[second - 1] is None


def _separated(backend: Tokenizer, eos: str, eos_id: int) -> Any:
    """``backend``'s post-processor with ``eos`` after a pair's first text: inserted into its template, or a
    template added after it (a byte-level one, which adds no tokens) or in its place (none)."""
    state = json.loads(backend.to_str())
    special = {eos: {"id": eos, "ids": [eos_id], "tokens": [eos]}}
    separator = {"SpecialToken": {"id": eos, "type_id": 0}}
    added = {
        "type": "TemplateProcessing",
        "single": [{"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, separator, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": special,
    }
    processor = state["post_processor"]
    steps = processor["processors"] if processor and processor["type"] == "Sequence" else [processor]
    templates = [step for step in steps if step and step["type"] == "TemplateProcessing"]
    if templates:
        pair = templates[0]["pair"]
        first = next(i for i, piece in enumerate(pair) if piece.get("Sequence", {}).get("id") == "A")
        pair.insert(first + 1, separator)
        templates[0]["special_tokens"] |= special
    else:
        state["post_processor"] = {"type": "Sequence", "processors": [*filter(None, steps), added]}
    return Tokenizer.from_str(json.dumps(state)).post_processor
