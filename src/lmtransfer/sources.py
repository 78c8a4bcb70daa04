"""Datasets for the training loop: cached features (feature-based) or tokenised text (live encoder).

Both hand the DataLoader a whole batch at once (``__getitems__``), as
``{"inputs": {...}, "labels": (B,), "index": (B,)}``; the model decides what the inputs mean.
``index`` lets outputs be put back in input order after length-sorted or multi-process evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler
from transformers import PreTrainedTokenizerBase

from lmtransfer.cache import FeatureCache


def as_is(batch: dict[str, Any]) -> dict[str, Any]:
    """collate_fn for datasets whose ``__getitems__`` already returns a batch."""
    return batch


def _with_labels(batch: dict[str, Any], labels: np.ndarray | None, chosen: np.ndarray) -> dict[str, Any]:
    batch["index"] = torch.from_numpy(chosen)
    if labels is not None:
        batch["labels"] = torch.from_numpy(labels[chosen])
    return batch


class CachedFeatureDataset(Dataset):
    """Sentence-level cached features (B, L, H), read from the memory-mapped cache a batch at a time."""

    def __init__(self, cache: FeatureCache, labels: np.ndarray | None = None) -> None:
        self.cache = cache
        self.labels = labels

    def __len__(self) -> int:
        return len(self.cache)

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        chosen = np.asarray(indices, dtype=np.int64)
        features = torch.from_numpy(self.cache.gather_pooled(chosen))  # (B, L, H) float32
        return _with_labels({"inputs": {"features": features}}, self.labels, chosen)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])

    def eval_order(self) -> np.ndarray:
        return np.arange(len(self))


class TextDataset(Dataset):
    """Texts tokenised once; a batch is padded to its longest member."""

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

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        chosen = np.asarray(indices, dtype=np.int64)
        rows = {n: [self.encoding[n][i] for i in chosen] for n in self.names}
        inputs = dict(self.tokenizer.pad(rows, return_tensors="pt"))
        return _with_labels({"inputs": inputs}, self.labels, chosen)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])

    def eval_order(self) -> np.ndarray:
        """Longest first: batches of similar length pad little."""
        return np.argsort(-self.lengths, kind="stable")


class EpochSampler(Sampler[int]):
    """A fresh permutation each epoch, fixed by (seed, epoch), optionally without its first ``skip`` items.

    A resumed run sees the same order and skips what it already trained on. (Deliberately no
    ``set_epoch``: accelerate would call it with its own count of finished passes, which restarts
    at zero in a resumed process.)
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch, self.skip = size, seed, 0, 0

    def start(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def __iter__(self) -> Iterator[int]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        return iter(order[self.skip :].tolist())

    def __len__(self) -> int:
        return self.size - self.skip
