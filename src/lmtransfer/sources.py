"""Batch sources for the training loop: cached features, or tokenised text for a live encoder.

Both yield ``{"inputs": {...}, "labels": (B,), "index": (B,)}``; the model decides what the inputs mean.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from lmtransfer.cache import FeatureCache


class CachedFeatureSource:
    """Sentence-level cached features (B, L, H) with optional class ids."""

    def __init__(self, cache: FeatureCache, labels: np.ndarray | None = None) -> None:
        self.cache = cache
        self.labels = labels

    def __len__(self) -> int:
        return len(self.cache)

    def batches(self, batch_size: int, rng: np.random.Generator | None = None) -> Iterator[dict[str, Any]]:
        order = rng.permutation(len(self)) if rng is not None else np.arange(len(self))
        for first in range(0, len(order), batch_size):
            chosen = order[first : first + batch_size]
            batch: dict[str, Any] = {
                "inputs": {"features": torch.from_numpy(self.cache.gather_pooled(chosen))},  # (B, L, H)
                "index": torch.from_numpy(chosen),
            }
            if self.labels is not None:
                batch["labels"] = torch.from_numpy(self.labels[chosen])
            yield batch


class TextSource:
    """Texts tokenised once; batches padded to their longest member.

    In evaluation order (no ``rng``) batches are formed from length-sorted texts, so little compute goes
    to padding; ``index`` lets the caller put outputs back in the original order.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        texts: Sequence[str],
        max_length: int,
        labels: np.ndarray | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.encoding = tokenizer(list(texts), truncation=True, max_length=max_length, verbose=False)
        self.names = [n for n in tokenizer.model_input_names if n in self.encoding]
        self.lengths = np.array([len(ids) for ids in self.encoding["input_ids"]])
        self.labels = labels

    def __len__(self) -> int:
        return len(self.lengths)

    def batches(self, batch_size: int, rng: np.random.Generator | None = None) -> Iterator[dict[str, Any]]:
        order = rng.permutation(len(self)) if rng is not None else np.argsort(self.lengths, kind="stable")
        for first in range(0, len(order), batch_size):
            chosen = order[first : first + batch_size]
            inputs = self.tokenizer.pad(
                {n: [self.encoding[n][i] for i in chosen] for n in self.names}, return_tensors="pt"
            )
            batch: dict[str, Any] = {"inputs": dict(inputs), "index": torch.from_numpy(chosen)}
            if self.labels is not None:
                batch["labels"] = torch.from_numpy(self.labels[chosen])
            yield batch
