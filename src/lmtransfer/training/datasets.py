"""Datasets for the training loop: cached features (feature-based) or tokenised text (live encoder).

Both hand the DataLoader a whole batch at once (``__getitems__``), as
``{"inputs": {...}, "labels": (B,), "index": (B,)}``; the model decides what the inputs mean.
``index`` lets outputs be put back in input order after length-sorted or multi-process evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from transformers import PreTrainedTokenizerBase

from lmtransfer.data.examples import Example
from lmtransfer.features.cache.reader import FeatureCache
from lmtransfer.features.inputs import encode, padded_spans
from lmtransfer.tasks.base import Labels


def as_is(batch: dict[str, Any]) -> dict[str, Any]:
    """collate_fn for datasets whose ``__getitems__`` already returns a batch."""
    return batch


IGNORE = -100  # label of padding positions: cross-entropy and the CRF skip them


def _with_labels(batch: dict[str, Any], labels: Labels | None, chosen: np.ndarray) -> dict[str, Any]:
    batch["index"] = torch.from_numpy(chosen)
    if labels is None:
        return batch
    if isinstance(labels, np.ndarray):
        batch["labels"] = torch.from_numpy(labels[chosen])
        return batch
    rows = [labels[i] for i in chosen]
    padded = np.full((len(rows), max((len(r) for r in rows), default=0)), IGNORE, dtype=np.int64)  # (B, W)
    for b, row in enumerate(rows):
        padded[b, : len(row)] = row
    batch["labels"] = torch.from_numpy(padded)
    return batch


class CachedFeatureDataset(Dataset):
    """Cached features read from the memory-mapped cache a batch at a time: (B, L, H) per sentence, or
    zero-padded (B, R, L, H) rows per word or token with their (B, R) mask."""

    def __init__(self, cache: FeatureCache, labels: Labels | None = None) -> None:
        self.cache = cache
        self.labels = labels
        self.sequence = cache.granularity != "sentence"
        self.lengths = cache.rows() if self.sequence else None  # batches of similar length pad little

    def __len__(self) -> int:
        return len(self.cache)

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        chosen = np.asarray(indices, dtype=np.int64)
        if not self.sequence:
            inputs = {"features": torch.from_numpy(self.cache.gather_pooled(chosen))}  # (B, L, H) float32
        else:
            features, mask = self.cache.gather_rows(chosen)  # (B, R, L, H), (B, R)
            inputs = {"features": torch.from_numpy(features), "mask": torch.from_numpy(mask)}
        return _with_labels({"inputs": inputs}, self.labels, chosen)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])

    def eval_order(self) -> np.ndarray:
        return np.arange(len(self)) if self.lengths is None else np.argsort(-self.lengths, kind="stable")


class TextDataset(Dataset):
    """Examples (texts, pairs, word lists or token ids) tokenised once; a batch is padded to its longest.

    At word granularity a batch also carries each word's first and last token (``word_spans``) and a
    word ``mask``; at token granularity the ``mask`` is the attention mask.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        examples: Sequence[Example],
        max_length: int,
        labels: Labels | None = None,
        granularity: str = "sentence",
    ) -> None:
        self.tokenizer = tokenizer
        self.encoding = encode(tokenizer, examples, max_length)
        self.lengths = np.array(self.encoding.lengths)
        self.labels = labels
        self.granularity = granularity

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        chosen = np.asarray(indices, dtype=np.int64)
        inputs = self.encoding.pad(chosen, self.tokenizer.pad_token_id or 0)
        if self.granularity == "word":
            spans = padded_spans([self.encoding.spans[i] for i in chosen])  # (B, W, 2)
            counts = torch.tensor([len(self.encoding.spans[i]) for i in chosen])  # (B,)
            inputs["word_spans"] = spans
            inputs["mask"] = torch.arange(spans.shape[1])[None, :] < counts[:, None]  # (B, W)
        elif self.granularity == "token":
            inputs["mask"] = inputs["attention_mask"].bool()  # (B, T)
        return _with_labels({"inputs": inputs}, self.labels, chosen)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])

    def eval_order(self) -> np.ndarray:
        """Longest first: batches of similar length pad little."""
        return np.argsort(-self.lengths, kind="stable")
