"""Masked-LM pretraining of an encoder on an unlabelled plain-text corpus: step one of both transfer ways.

The corpus has one document or sentence per line (blank lines skipped); a line longer than
``max_length`` tokens becomes several examples, so no text is dropped. Masking is transformers'
``DataCollatorForLanguageModeling`` (BERT's 80/10/10 rule, or whole words, always replaced by the mask
token). Where the checkpoint has no masked-LM head, a new one is made with its decoder tied to the
input embeddings. Training is the one loop (``lmtransfer.training.loop.fit``) that trains every task,
here with no dev set. The result is a Hugging Face masked LM: ``fill_mask`` loads it, and so does
``load_encoder`` (the head is then left aside), for feature extraction and fine-tuning alike.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset
from transformers import DataCollatorForLanguageModeling, PreTrainedModel, PreTrainedTokenizerBase, set_seed

from lmtransfer.core.atomic import write_dir
from lmtransfer.core.errors import ConfigError, DataError, ModelError
from lmtransfer.core.progress import Progress
from lmtransfer.core.text import LINE_END, decode_utf8
from lmtransfer.encoders.masked_lm import MaskedLM, load_masked_lm, quiet_transformers
from lmtransfer.training.loop import LoopArgs, fit


@dataclass
class PretrainResult:
    output_dir: Path
    steps: int
    seconds: float
    final_loss: float  # mean training loss over the last (up to) 50 steps
    examples: int  # training examples: the corpus lines, a long one cut into several
    new_head: bool  # the checkpoint had no masked-LM head and got a new, tied one


def read_corpus(path: str | Path) -> list[str]:
    """The non-blank lines of a UTF-8 text file (a byte-order mark is dropped)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read the corpus ({exc.strerror})", path=path) from None
    lines = [line for line in LINE_END.split(decode_utf8(raw, path)) if line.strip()]
    if not lines:
        raise DataError("the corpus has no text (every line is blank)", path=path)
    return lines


def encode_corpus(
    tokenizer: PreTrainedTokenizerBase, lines: list[str], max_length: int, whole_word_mask: bool
) -> list[dict[str, list]]:
    """One example per ``max_length`` tokens of each line; offsets only for whole-word masking."""
    encoded = tokenizer(
        lines,
        truncation=True,
        max_length=max_length,
        return_overflowing_tokens=True,
        return_special_tokens_mask=True,
        return_offsets_mapping=whole_word_mask,
    )
    keys = [k for k in encoded if k != "overflow_to_sample_mapping"]
    return [{k: encoded[k][i] for k in keys} for i in range(len(encoded["input_ids"]))]


def make_collator(
    tokenizer: PreTrainedTokenizerBase, mlm_probability: float, whole_word_mask: bool, seed: int
) -> DataCollatorForLanguageModeling | _PadOffsets:
    """transformers' masking; whole-word masking always uses the mask token (it has no random replacement)."""
    if not 0 < mlm_probability <= 1:
        raise ConfigError(f"must lie in (0, 1], not {mlm_probability}", field="mlm_probability")
    collator = DataCollatorForLanguageModeling(
        tokenizer,
        mlm_probability=mlm_probability,
        whole_word_mask=whole_word_mask,
        mask_replace_prob=1.0 if whole_word_mask else 0.8,
        random_replace_prob=0.0 if whole_word_mask else 0.1,
        seed=seed,
    )
    return _PadOffsets(collator) if whole_word_mask else collator


@dataclass
class _PadOffsets:
    """Pads the character offsets that whole-word masking reads; ``tokenizer.pad`` leaves them as they are."""

    collator: DataCollatorForLanguageModeling

    def __call__(self, examples: list[dict[str, list]]) -> dict[str, torch.Tensor]:
        longest = max(len(e["input_ids"]) for e in examples)
        left = self.collator.tokenizer.padding_side == "left"
        padded = []
        for e in examples:
            fill = [(0, 0)] * (longest - len(e["offset_mapping"]))
            padded.append({**e, "offset_mapping": fill + e["offset_mapping"] if left else e["offset_mapping"] + fill})
        return self.collator(padded)


def pretrain(
    model: str | Path,
    corpus_path: str | Path,
    output_dir: str | Path,
    *,
    epochs: int = 1,
    max_steps: int | None = None,
    batch_size: int = 32,
    lr: float = 5e-5,
    warmup_ratio: float = 0.06,
    weight_decay: float = 0.01,
    mlm_probability: float = 0.15,
    whole_word_mask: bool = False,
    max_length: int = 128,
    seed: int = 13,
    progress: bool = True,
) -> PretrainResult:
    """Continue (or start) masked-LM training of ``model`` on ``corpus_path``; write it to ``output_dir``.

    Training runs ``epochs`` passes over the corpus; ``max_steps``, when given, sets the number of
    optimizer steps instead (as in transformers' Trainer), reading the corpus again as often as needed.
    AdamW, a linear warm-up over ``warmup_ratio`` of the steps then linear decay to 0, gradients
    clipped at norm 1. The output directory is replaced whole when training has finished.
    """
    _check_args(epochs, max_steps, batch_size, lr, max_length)
    lines = read_corpus(corpus_path)
    set_seed(seed)  # a new head starts from the same random weights for the same seed
    lm = load_masked_lm(str(model), dtype=torch.float32)
    if not getattr(lm.tokenizer, "is_fast", False):
        raise ModelError("pretraining needs a fast (Rust) tokenizer, for long lines and word offsets", path=lm.source)
    if lm.new_head:
        _tie_new_head(lm)
    max_length = min(max_length, lm.tokenizer.model_max_length)
    examples = encode_corpus(lm.tokenizer, lines, max_length, whole_word_mask)
    if all(all(e["special_tokens_mask"]) for e in examples):
        raise DataError("nothing to mask: every line tokenizes to special tokens only", path=corpus_path)
    if progress and lm.new_head:
        Progress.write("the checkpoint has no masked-LM head: training a new one, tied to the input embeddings")
    collate = make_collator(lm.tokenizer, mlm_probability, whole_word_mask, seed)
    args = LoopArgs(
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        warmup_ratio=warmup_ratio,
        group_by_length=False,  # examples in random order, as masked-LM training usually reads them
        seed=seed,
        progress=progress,
    )
    start = time.perf_counter()
    fitted = fit(_Logits(lm.model), MaskedExamples(examples, collate), loss_fn=masked_lm_loss, args=args)
    lm.model.eval()
    seconds = time.perf_counter() - start
    final_loss = float(np.mean(fitted.recent_losses)) if fitted.recent_losses else float("nan")
    facts = {
        "source": lm.source,
        "corpus": str(corpus_path),
        "lines": len(lines),
        "examples": len(examples),
        "steps": fitted.steps,
        "final_loss": final_loss,
        "new_head": bool(lm.new_head),
        "args": {"epochs": epochs, "max_steps": max_steps, "batch_size": batch_size, "lr": lr, "seed": seed},
        "masking": {"mlm_probability": mlm_probability, "whole_word_mask": whole_word_mask, "max_length": max_length},
    }
    target = _save(lm, Path(output_dir), facts)
    return PretrainResult(target, fitted.steps, seconds, final_loss, len(examples), bool(lm.new_head))


class MaskedExamples(Dataset):
    """Tokenised corpus examples, masked a batch at a time by the collator (fresh masks on every pass), as
    the loop's batches: ``{"inputs": {input_ids, attention_mask, ...}, "labels": (B, T), "index": (B,)}``."""

    def __init__(self, examples: list[dict[str, list]], collate) -> None:
        self.examples, self.collate = examples, collate

    def __len__(self) -> int:
        return len(self.examples)

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        batch = dict(self.collate([self.examples[i] for i in indices]))
        labels = batch.pop("labels")  # (B, T): -100 where nothing is to be predicted
        batch.pop("special_tokens_mask", None)
        return {"inputs": batch, "labels": labels, "index": torch.as_tensor(np.asarray(indices))}


class _Logits(nn.Module):
    """The masked LM as the loop sees a model: inputs in, (B, T, V) vocabulary scores out."""

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, **inputs: Tensor) -> Tensor:
        return self.model(**inputs).logits  # (B, T, V)


def masked_lm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy over the masked positions (as the models' own loss); a batch with nothing masked
    (possible in a tiny one) gives a loss of 0 with no gradient."""
    masked = labels != -100  # (B, T)
    if not bool(masked.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[masked], labels[masked])  # (N, V) at the masked positions


def _check_args(epochs: int, max_steps: int | None, batch_size: int, lr: float, max_length: int) -> None:
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("max_length", max_length)):
        if value < 1:
            raise ConfigError(f"must be at least 1, not {value}", field=name)
    if max_steps is not None and max_steps < 1:
        raise ConfigError(f"must be at least 1, not {max_steps}", field="max_steps")
    if not lr > 0:
        raise ConfigError(f"must be positive, not {lr}", field="lr")


def _tie_new_head(lm: MaskedLM) -> None:
    """A new head's decoder is the input embedding matrix (BERT's choice), not a second random matrix."""
    model = lm.model
    if model.get_output_embeddings() is None:
        raise ModelError("this model type has no output embeddings to train as a masked-LM head", path=lm.source)
    if model.get_output_embeddings().weight is not model.get_input_embeddings().weight:
        model.config.tie_word_embeddings = True
        model.tie_weights()
    if model.get_output_embeddings().weight is not model.get_input_embeddings().weight:
        raise ModelError("could not tie the new masked-LM head to the input embeddings", path=lm.source)


def _save(lm: MaskedLM, target: Path, facts: dict) -> Path:
    """A Hugging Face masked LM (safetensors, tokenizer) plus pretrain.json, written whole (``write_dir``)."""

    def fill(folder: Path) -> None:
        with quiet_transformers():
            lm.model.save_pretrained(folder)
            lm.tokenizer.save_pretrained(folder)
        (folder / "pretrain.json").write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")

    return write_dir(target, fill)
