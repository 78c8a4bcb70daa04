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

from lmtransfer.config.schema import RunConfig
from lmtransfer.core.choices import task_granularity
from lmtransfer.core.errors import ConfigError
from lmtransfer.data.examples import Example
from lmtransfer.data.splits import Split
from lmtransfer.nn.heads import build_head
from lmtransfer.nn.readers import TextReader
from lmtransfer.nn.task_model import TaskModel, build_combination
from lmtransfer.tasks.requests import Body, PairsRequest, TextsRequest
from lmtransfer.tasks.units import Units

Labels = np.ndarray | Sequence[np.ndarray]  # one row per example, or one array per example (tags per word)
SIMILARITY_START = 0.9  # the last layer's starting share of the mix under a head that compares a pair


@dataclass
class Prepared:
    """One split as the encoder sees it: ``examples`` (one per window for windowed tasks) and their targets.

    ``source`` is the split as read (texts, sentences, questions), ``size`` how many items it holds,
    and ``extra`` whatever the task needs to map outputs back onto them (windows, lengths). ``sides``
    (N, S) is set where an item reads several examples (``grouped``): the index of each of its S texts
    among ``examples`` (a pair read apart: S = 2, each distinct text once; a long text in windows: S = 1);
    then the targets are per item.
    """

    examples: list[Example]
    targets: Labels | None
    source: Any
    size: int
    extra: Any = None
    sides: np.ndarray | None = None


def grouped(config: RunConfig) -> bool:
    """Whether items read their texts as groups of vectors: a pair read apart, or texts in windows."""
    return config.features.pair == "separate" or config.encoder.long_text == "windows"


@dataclass(frozen=True)
class Scored:
    """A split's metrics and its evaluation units (``Units.full()`` gives the same numbers)."""

    metrics: dict[str, Any]
    units: Units


class Task:
    """The interface; ``lmtransfer.tasks.table`` lists the implementations. A task is made from a resolved
    config and only reads it. Everything that differs between tasks is decided here, by the task: the
    layers above (the CLI, the server, the model card, the baselines) call these methods and never test
    a task's name."""

    name = "task"
    metrics: tuple[str, ...] = ()  # dev metrics ``train.metric`` may name (``choices.TASK_METRICS``)
    prediction_suffix = ".jsonl"
    pipeline_tag = "text-classification"  # the Hub's task for a model card

    def __init__(self, config: RunConfig) -> None:
        self.config = config

    @property
    def granularity(self) -> str:
        """The features its head reads: sentence, word or token (resolved into ``features.granularity``)."""
        return task_granularity(self.name, self.config.head.type)

    # reading ----------------------------------------------------------------------------------------
    def load(self) -> dict[str, Split]:
        """train / dev / test as read from the config's data (dev and test may be split off train)."""
        raise NotImplementedError

    def data_facts(self, splits: dict[str, Split]) -> dict[str, Any]:
        """Config values that the data decides, as dotted fields (the tag scheme ``auto`` detects); the
        run's config is resolved again with them, so that the saved config says what ran."""
        return {}

    def read(self, path: str | Path, labelled: bool = True) -> Split:
        """One file in the task's format: labelled (``evaluate --data``) or not (``predict --data``)."""
        raise NotImplementedError

    def parse(self, items: Sequence[Any]) -> Split:
        """Unlabelled inputs given to ``predict`` (texts, pairs, word lists, question/context dicts)."""
        raise NotImplementedError

    def parse_argument(self, argument: str) -> Any:
        """One command-line input of ``lmtransfer predict`` as ``parse`` takes it: a text, or for a pair
        task the two texts joined by a tab. A ValueError says what the argument should be."""
        if self.config.data.text_pair_column is None:
            return argument
        first, tab, second = argument.partition("\t")
        if not tab:
            raise ValueError("this run reads sentence pairs: give each input as the two texts joined by a tab")
        return (first, second)

    def example_argument(self) -> str:
        """An input ``parse_argument`` takes, for the usage lines of a model card."""
        if self.config.data.text_pair_column is None:
            return "The film was a delight."
        return "A man is playing a guitar.\tSomeone plays music."

    def request_model(self) -> type[Body]:
        """The body ``POST /v1/predict/{run}`` takes (``lmtransfer.tasks.requests``)."""
        return TextsRequest if self.config.data.text_pair_column is None else PairsRequest

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

    per_position = False  # whether its head scores every word or token (else each text)

    def num_outputs(self, labels: list[str]) -> int:
        return len(labels)

    def head_options(self, labels: list[str]) -> dict[str, Any]:
        """What the task adds to the ``head`` section's values in building its head (``nn.heads.HeadOptions``)."""
        return {}

    def head(self, in_dim: int, labels: list[str]) -> nn.Module:
        """The head ``head.type`` names, over ``in_dim`` features (``nn.heads.build_head``)."""
        h = self.config.head
        return build_head(
            h.type,
            in_dim,
            self.num_outputs(labels),
            per_position=self.per_position,
            hidden_size=h.hidden_size,
            dropout=h.dropout,
            lstm_hidden=h.lstm_hidden,
            lstm_layers=h.lstm_layers,
            **self.head_options(labels),
        )

    def build_model(self, num_layers: int, hidden_size: int, labels: list[str]) -> TaskModel:
        f, h = self.config.features, self.config.head
        combine = self.pair_combine() if f.pair == "separate" else "single"
        # a head that compares a pair's two vectors starts from the encoder's own similarity, which is
        # that of its last layer: the mix starts there (90 %) and learns from it what the others add
        last_weight = SIMILARITY_START if combine == "sides" else None
        mix = build_combination(f.combine, num_layers, h.layer_norm, last_weight)
        in_dim = hidden_size * num_layers if f.combine == "concat" else hidden_size
        if not grouped(self.config):
            return TaskModel(mix, self.head(in_dim, labels))
        reader = TextReader(in_dim, f.window_pooling, combine)
        return TaskModel(mix, self.head(in_dim * reader.out_factor, labels), reader)

    def pair_combine(self) -> str:
        """What a head of this task reads of a pair read apart: [u; v; |u-v|; u*v] (``features``), or both
        vectors (``sides``, for a head that compares them)."""
        return "features"

    def loss(self, model: TaskModel) -> Callable[[Tensor, Tensor], Tensor]:
        raise NotImplementedError

    # outputs ----------------------------------------------------------------------------------------
    def scored(self, prepared: Prepared, outputs: np.ndarray, model: TaskModel, labels: list[str]) -> Scored:
        """Metrics of ``outputs`` (one row per prepared example, in order) against the split's gold, and what
        each evaluation unit (text, sentence, question) contributed to them, for resampling."""
        raise NotImplementedError

    def score(self, prepared: Prepared, outputs: np.ndarray, model: TaskModel, labels: list[str]) -> dict[str, Any]:
        """The metrics alone (the loop's dev evaluation after each epoch)."""
        return self.scored(prepared, outputs, model, labels).metrics

    def predictions(self, prepared: Prepared, outputs: np.ndarray, model: TaskModel, labels: list[str]) -> list:
        """One prediction per item of the split (per text, sentence or question)."""
        raise NotImplementedError

    def prediction_file(self, prepared: Prepared, predictions: list) -> str:
        """The predictions as the file the task's users expect (JSONL, CoNLL columns, SQuAD JSON)."""
        raise NotImplementedError

    def prediction_row(self, item: Any, found: Any) -> dict[str, Any]:
        """One input (as ``parse`` takes it) and its prediction, as ``lmtransfer predict`` prints it and
        ``lmtransfer serve`` answers."""
        if isinstance(item, tuple):
            return {"text": item[0], "text_pair": item[1], **found}
        return {"text": item, **found}

    def fit_bag_of_words(self, x: Any, targets: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """The bag-of-words baseline's linear model on (N, V) features ``x``: (K, V) weight, (K,) bias of the
        logits the task scores (``lmtransfer.encoders.bow``). A task without one refuses the baseline."""
        raise ConfigError(f"the bag-of-words baseline does not do task '{self.name}'", field="encoder.model")

    def summary(self, metrics: dict[str, Any]) -> str:
        """One line for the command line."""
        return "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k in self.metrics)
