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
from lmtransfer.features.pooling import FeatureSpec
from lmtransfer.tasks.base import Labels, Prepared


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
    zero-padded (B, R, L, H) rows per word or token with their (B, R) mask. With ``sides`` (N, S), an item
    reads the window rows of its S texts: zero-padded (B, S, W, L, H) and their (B, S, W) ``windows`` mask."""

    def __init__(self, cache: FeatureCache, labels: Labels | None = None, sides: np.ndarray | None = None) -> None:
        self.cache = cache
        self.labels = labels
        self.sides = sides
        self.sequence = cache.granularity != "sentence"
        self.lengths = cache.rows() if self.sequence else None  # batches of similar length pad little

    def __len__(self) -> int:
        return len(self.cache) if self.sides is None else len(self.sides)

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        chosen = np.asarray(indices, dtype=np.int64)
        if self.sides is not None:
            inputs = self._grouped(self.sides[chosen])
        elif not self.sequence:
            inputs = {"features": torch.from_numpy(self.cache.gather_pooled(chosen))}  # (B, L, H) float32
        else:
            features, mask = self.cache.gather_rows(chosen)  # (B, R, L, H), (B, R)
            inputs = {"features": torch.from_numpy(features), "mask": torch.from_numpy(mask)}
        return _with_labels({"inputs": inputs}, self.labels, chosen)

    def _grouped(self, sides: np.ndarray) -> dict[str, torch.Tensor]:
        parts = [[self.cache.example(int(e)) for e in item] for item in sides]  # (k, L, H) a text
        width = max(len(p) for item in parts for p in item)
        shape = (*sides.shape, width, self.cache.num_layers, self.cache.hidden_size)
        features, windows = np.zeros(shape, dtype=np.float32), np.zeros(shape[:3], dtype=bool)
        for b, item in enumerate(parts):
            for s, rows in enumerate(item):
                features[b, s, : len(rows)], windows[b, s, : len(rows)] = rows, True
        return {"features": torch.from_numpy(features), "windows": torch.from_numpy(windows)}  # (B, S, W, L, H)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])

    def eval_order(self) -> np.ndarray:
        return np.arange(len(self)) if self.lengths is None else np.argsort(-self.lengths, kind="stable")


class TextDataset(Dataset):
    """Examples (texts, pairs, word lists or token ids) tokenised once; a batch is padded to its longest.

    At word granularity a batch also carries each word's first and last token (``word_spans``) and a
    word ``mask``; at token granularity the ``mask`` is the attention mask. With ``sides`` (N, S), an item
    reads its S texts, each in windows of ``max_length`` tokens sharing ``stride`` (at most ``max_windows``
    of them, the first ones; ``cut`` counts the texts that had more): a batch is their sequences, padded,
    with ``groups`` (B, S, W), each window's place in the batch (-1: none), and its ``windows`` mask.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        examples: Sequence[Example],
        max_length: int,
        labels: Labels | None = None,
        granularity: str = "sentence",
        sides: np.ndarray | None = None,
        stride: int | None = None,
        max_windows: int | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.encoding = encode(tokenizer, examples, max_length, stride)
        self.labels = labels
        self.granularity = granularity
        self.sides, self.cut = sides, 0
        lengths = np.array(self.encoding.lengths)
        if sides is None:
            self.lengths = lengths
            return
        windows = self.encoding.windows(len(examples))
        self.cut = sum(len(w) > max_windows for w in windows) if max_windows else 0
        self.windows = [w[:max_windows] for w in windows]
        self.lengths = np.array([sum(int(lengths[self.windows[e]].sum()) for e in item) for item in sides])

    def __len__(self) -> int:
        return len(self.lengths)

    def _grouped(self, chosen: np.ndarray) -> dict[str, torch.Tensor]:
        sides = self.sides[chosen]  # (B, S)
        width = max(len(self.windows[e]) for e in sides.reshape(-1))
        groups = np.full((*sides.shape, width), -1, dtype=np.int64)  # (B, S, W)
        sequences: list[int] = []
        for (b, s), e in np.ndenumerate(sides):
            own = self.windows[e]
            groups[b, s, : len(own)] = np.arange(len(sequences), len(sequences) + len(own))
            sequences.extend(own.tolist())
        inputs = self.encoding.pad(np.array(sequences), self.tokenizer.pad_token_id or 0)
        inputs["groups"] = torch.from_numpy(groups)
        inputs["windows"] = inputs["groups"] >= 0  # (B, S, W)
        return inputs

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        chosen = np.asarray(indices, dtype=np.int64)
        if self.sides is not None:
            return _with_labels({"inputs": self._grouped(chosen)}, self.labels, chosen)
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


def live_dataset(
    tokenizer: PreTrainedTokenizerBase, prepared: Prepared, spec: FeatureSpec, max_windows: int | None = None
) -> TextDataset:
    """A task's prepared examples, tokenised for a live encoder as ``spec`` reads them (windows included)."""
    return TextDataset(
        tokenizer,
        prepared.examples,
        spec.max_length,
        prepared.targets,
        spec.granularity,
        prepared.sides,
        spec.window_stride,
        max_windows,
    )
