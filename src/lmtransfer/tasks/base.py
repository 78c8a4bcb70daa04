"""What a task is to the pipeline: how it reads its data, what the encoder sees, and how outputs are scored.

The pipeline is the same for every task and both ways: read the splits (every input check before
anything is written), turn each into ``Prepared`` encoder examples with targets, get features from
the cache or a live encoder, train the task model with the one loop, score, write predictions. A
task supplies only the parts in between, as methods of one small class.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor, nn

from lmtransfer.config import RunConfig
from lmtransfer.heads import TaskModel, build_combination
from lmtransfer.inputs import Example
from lmtransfer.sources import Labels


@dataclass
class Prepared:
    """One split as the encoder sees it: ``examples`` (one per window for windowed tasks) and their targets.

    ``source`` is the split as read (texts, sentences, questions), ``size`` how many items it holds,
    and ``extra`` whatever the task needs to map outputs back onto them (windows, lengths).
    """

    examples: list[Example]
    targets: Labels | None
    source: Any
    size: int
    extra: Any = None


class Task:
    """The interface; see ``lmtransfer.tasks`` for the implementations."""

    name = "task"
    granularity = "sentence"  # the features it needs: sentence, word or token
    metrics: tuple[str, ...] = ()  # dev metrics ``train.metric`` may name; the first is the default
    prediction_suffix = ".jsonl"

    def __init__(self, config: RunConfig) -> None:
        self.config = config

    # reading ----------------------------------------------------------------------------------------
    def load(self) -> dict[str, Any]:
        """train / dev / test as read from the config's data (dev and test may be split off train)."""
        raise NotImplementedError

    def read(self, path: str | Path, labelled: bool = True) -> Any:
        """One file in the task's format: labelled (``evaluate --data``) or not (``predict --input``)."""
        raise NotImplementedError

    def parse(self, items: Sequence[Any]) -> Any:
        """Unlabelled inputs given to ``predict`` (texts, pairs, word lists, question/context dicts)."""
        raise NotImplementedError

    def texts(self, split: Any) -> list[str]:
        """The split's raw text pieces, for vocabularies built from the training data (scratch vectors)."""
        raise NotImplementedError

    def fit_labels(self, train: Any) -> list[str]:
        """The output vocabulary, from the training split."""
        return []

    def check(self, split: Any, labels: list[str]) -> None:
        """Raise a DataError naming file and line for a label the model cannot output."""

    # model ------------------------------------------------------------------------------------------
    def prepare(self, split: Any, tokenizer: Any, labels: list[str]) -> Prepared:
        raise NotImplementedError

    def head(self, in_dim: int, labels: list[str]) -> nn.Module:
        raise NotImplementedError

    def build_model(self, num_layers: int, hidden_size: int, labels: list[str]) -> TaskModel:
        f, h = self.config.features, self.config.head
        mix = build_combination(f.combine, num_layers, h.layer_norm)
        in_dim = hidden_size * num_layers if f.combine == "concat" else hidden_size
        return TaskModel(mix, self.head(in_dim, labels))

    def loss(self, model: TaskModel) -> Callable[[Tensor, Tensor], Tensor]:
        raise NotImplementedError

    # outputs ----------------------------------------------------------------------------------------
    def score(self, prepared: Prepared, outputs: np.ndarray, model: TaskModel, labels: list[str]) -> dict[str, Any]:
        """Metrics of ``outputs`` (one row per prepared example, in order) against the split's gold."""
        raise NotImplementedError

    def predictions(self, prepared: Prepared, outputs: np.ndarray, model: TaskModel, labels: list[str]) -> list:
        """One prediction per item of the split (per text, sentence or question)."""
        raise NotImplementedError

    def prediction_file(self, prepared: Prepared, predictions: list) -> str:
        """The predictions as the file the task's users expect (JSONL, CoNLL columns, SQuAD JSON)."""
        raise NotImplementedError

    def summary(self, metrics: dict[str, Any]) -> str:
        """One line for the command line."""
        return "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k in self.metrics)


def hold_out(size: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random (rest, held_out) index arrays, both sorted; at least one item each way."""
    held = min(max(1, int(np.ceil(fraction * size))), size - 1)
    order = np.random.default_rng(seed).permutation(size)
    return np.sort(order[held:]), np.sort(order[:held])
