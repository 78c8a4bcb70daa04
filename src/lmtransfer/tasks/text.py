"""Whole-text tasks, on one text or a sentence pair: single-label classification, multi-label
classification (a sigmoid per label) and regression (one score, STS-B style)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lmtransfer.core.choices import TASK_METRICS
from lmtransfer.core.errors import DataError, shown
from lmtransfer.data.examples import TextPair
from lmtransfer.data.splits import Split
from lmtransfer.data.tables import check_labels, load_splits, read_table
from lmtransfer.encoders import bow
from lmtransfer.nn.heads import CosineResidualHead, build_head
from lmtransfer.tasks.base import Prepared, Scored, Task, grouped
from lmtransfer.tasks.metrics import classification_metrics, multilabel_metrics, regression_metrics
from lmtransfer.tasks.units import classification_units, multilabel_units, regression_units


class ClassificationTask(Task):
    """One label per text (or pair), softmax over the labels."""

    name = "classification"
    metrics = TASK_METRICS[name]
    label_join: str | None = None  # JSONL label lists are joined by this (multi-label)

    def texts(self, split: Split) -> list[str]:
        return [*split.texts, *(split.pairs or [])]

    def load(self) -> dict[str, Split]:
        return load_splits(self.config.data, self.label_join, stratify=self.name == "classification")

    def read(self, path: str | Path, labelled: bool = True) -> Split:
        d = self.config.data
        label = d.label_column if labelled else None
        return read_table(path, d.text_column, label, d.format, d.text_pair_column, self.label_join)

    def parse(self, items: Sequence[Any]) -> Split:
        """Texts, or (first, second) pairs / {"text": ..., "text_pair": ...} dicts for a pair task."""
        if self.config.data.text_pair_column is None:
            return Split([str(item) for item in items], "input", labelled=False)
        pairs = [(item["text"], item["text_pair"]) if isinstance(item, dict) else tuple(item) for item in items]
        if any(len(pair) != 2 for pair in pairs):
            raise DataError("a pair task needs two texts per input", path="input")
        return Split([TextPair(a, b) for a, b in pairs], "input", labelled=False)

    def fit_labels(self, train: Split) -> list[str]:
        return sorted(set(train.labels or []))

    def check(self, split: Split, labels: list[str]) -> None:
        check_labels(split, labels, self.config.data.label_column)

    def _bad_label(self, split: Split, index: int, message: str) -> DataError:
        line = split.lines[index] if split.lines else None
        return DataError(message, path=split.origin, line=line, field=self.config.data.label_column)

    def targets(self, split: Split, labels: list[str]) -> np.ndarray:
        lookup = {label: i for i, label in enumerate(labels)}
        return np.array([lookup[label] for label in split.labels or []], dtype=np.int64)  # (N,)

    def prepare(self, split: Split, tokenizer: Any, labels: list[str]) -> Prepared:
        """The items as they are; a pair read apart as its two texts among the split's distinct texts (each
        once); a text in windows as itself (the windows are made when it is tokenised)."""
        targets = None if split.labels is None else self.targets(split, labels)
        items = list(split.items)
        if self.config.features.pair == "separate" and items and isinstance(items[0], TextPair):
            texts = list(dict.fromkeys(text for item in items for text in item))  # distinct, in first-seen order
            index = {text: i for i, text in enumerate(texts)}
            sides = np.array([[index[item.first], index[item.second]] for item in items], dtype=np.int64)
            return Prepared(texts, targets, split, len(split), sides=sides)
        sides = np.arange(len(items), dtype=np.int64)[:, None] if grouped(self.config) else None
        return Prepared(items, targets, split, len(split), sides=sides)

    def loss(self, model: nn.Module):
        return F.cross_entropy

    def fit_bag_of_words(self, x: Any, targets: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        return bow.logistic(x, targets, seed)

    def scored(self, prepared: Prepared, outputs: np.ndarray, model: nn.Module, labels: list[str]) -> Scored:
        found = outputs.argmax(axis=1)
        metrics = classification_metrics(prepared.targets, found, labels)
        # "f1": of the second label, the positive class, in binary tasks (MRPC, QQP); else macro-F1
        metrics["f1"] = metrics["per_class"][labels[1]]["f1"] if len(labels) == 2 else metrics["macro_f1"]
        return Scored(metrics, classification_units(prepared.targets, found, len(labels)))

    def predictions(self, prepared: Prepared, outputs: np.ndarray, model: nn.Module, labels: list[str]) -> list:
        probs = torch.softmax(torch.from_numpy(outputs), dim=1).numpy()
        return [{"label": labels[int(p.argmax())], "probabilities": dict(zip(labels, map(float, p)))} for p in probs]

    def prediction_file(self, prepared: Prepared, predictions: list) -> str:
        """JSONL: each text (or pair), its prediction, and its gold label (``gold``) where the split has them."""
        split: Split = prepared.source
        golds = self.golds(split) if split.labels else [None] * len(split)
        rows = []
        for item, prediction, gold in zip(split.items, predictions, golds):
            row = {"text": item.first, "text_pair": item.second} if isinstance(item, TextPair) else {"text": item}
            row |= prediction if gold is None else {**prediction, "gold": gold}
            rows.append(json.dumps(row, ensure_ascii=False) + "\n")
        return "".join(rows)

    def golds(self, split: Split) -> list[Any]:
        """The split's gold answers in the form its predictions take (a label; a list of labels; a score)."""
        return list(split.labels or [])


class MultilabelTask(ClassificationTask):
    """Any number of labels per text: one sigmoid per label, a label is predicted at probability >= 0.5.

    A label field holds the labels joined by ``data.label_separator`` (or, in JSONL, a list); an empty
    field means none of them.
    """

    name = "multilabel"
    metrics = TASK_METRICS[name]

    @property
    def label_join(self) -> str:
        return self.config.data.label_separator

    def _sets(self, split: Split) -> list[list[str]]:
        sep = self.label_join
        return [sorted({part.strip() for part in label.split(sep) if part.strip()}) for label in split.labels or []]

    def fit_labels(self, train: Split) -> list[str]:
        return sorted({label for labels in self._sets(train) for label in labels})

    def golds(self, split: Split) -> list[Any]:
        return self._sets(split)

    def check(self, split: Split, labels: list[str]) -> None:
        known = set(labels)
        for i, names in enumerate(self._sets(split)):
            for name in names:
                if name not in known:
                    raise self._bad_label(split, i, f"label '{shown(name)}' never appears in the training data")

    def targets(self, split: Split, labels: list[str]) -> np.ndarray:
        lookup = {label: i for i, label in enumerate(labels)}
        hot = np.zeros((len(split), len(labels)), dtype=np.float32)  # (N, C)
        for i, names in enumerate(self._sets(split)):
            hot[i, [lookup[name] for name in names if name in lookup]] = 1.0
        return hot

    def loss(self, model: nn.Module):
        return F.binary_cross_entropy_with_logits

    def fit_bag_of_words(self, x: Any, targets: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        return bow.per_label(x, targets, seed)

    def scored(self, prepared: Prepared, outputs: np.ndarray, model: nn.Module, labels: list[str]) -> Scored:
        found = outputs >= 0.0  # logit 0 = probability 0.5
        return Scored(multilabel_metrics(prepared.targets, found, labels), multilabel_units(prepared.targets, found))

    def predictions(self, prepared: Prepared, outputs: np.ndarray, model: nn.Module, labels: list[str]) -> list:
        probs = torch.sigmoid(torch.from_numpy(outputs)).numpy()
        return [
            {"labels": [labels[j] for j in np.flatnonzero(p >= 0.5)], "probabilities": dict(zip(labels, map(float, p)))}
            for p in probs
        ]


class RegressionTask(ClassificationTask):
    """One real-valued score per text or pair (STS-B similarity, ratings): mean squared error, Pearson / Spearman."""

    name = "regression"
    metrics = TASK_METRICS[name]

    def fit_labels(self, train: Split) -> list[str]:
        """The training targets' lowest and highest value: the range a cosine head maps onto."""
        values = self.targets(train, [])
        return [repr(float(values.min())), repr(float(values.max()))] if len(values) else []

    def check(self, split: Split, labels: list[str]) -> None:
        self.targets(split, labels)

    def golds(self, split: Split) -> list[Any]:
        return [float(value) for value in self.targets(split, [])]

    def pair_combine(self) -> str:
        return "sides"  # every head of a scored pair starts from the two texts' cosine

    def head(self, in_dim: int, labels: list[str]) -> nn.Module:
        """A text's (or a joint pair's) score; a pair read apart: the cosine head, or a head on its
        [u; v; |u-v|; u*v] added to the cosine (``CosineResidualHead``)."""
        target_range = tuple(map(float, labels)) if labels else (0.0, 1.0)
        h = self.config.head
        if self.config.features.pair != "separate":
            return super().head(in_dim, labels)
        if h.type == "cosine":
            return build_head("cosine", in_dim, 1, target_range=target_range)
        inner = super().head(4 * in_dim, labels)
        return CosineResidualHead(inner, *target_range)

    def targets(self, split: Split, labels: list[str]) -> np.ndarray:
        values = np.empty(len(split), dtype=np.float32)  # (N,)
        for i, label in enumerate(split.labels or []):
            try:
                values[i] = float(label)
            except ValueError:
                values[i] = np.nan
            if not np.isfinite(values[i]):
                raise self._bad_label(split, i, f"'{shown(label)}' is not a number")
        return values

    def num_outputs(self, labels: list[str]) -> int:
        return 1

    def loss(self, model: nn.Module):
        return lambda outputs, targets: F.mse_loss(outputs.squeeze(-1), targets)

    def fit_bag_of_words(self, x: Any, targets: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        return bow.ridge(x, targets)

    def scored(self, prepared: Prepared, outputs: np.ndarray, model: nn.Module, labels: list[str]) -> Scored:
        found = outputs[:, 0]
        return Scored(regression_metrics(prepared.targets, found), regression_units(prepared.targets, found))

    def predictions(self, prepared: Prepared, outputs: np.ndarray, model: nn.Module, labels: list[str]) -> list:
        return [{"score": float(value)} for value in outputs[:, 0]]
