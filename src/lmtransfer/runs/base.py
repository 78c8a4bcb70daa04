"""The one interface of a trained run loaded back from its directory, whatever trained it (an encoder with
a head, or the bag-of-words baseline): evaluate, predict, compare's worker and the CLI use only this.

A kind of run supplies ``prepare`` (the split as its model reads it) and ``outputs`` (its model's raw
outputs, one row per prepared example); scoring, predictions and their files are the task's own.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from lmtransfer.config.schema import RunConfig
from lmtransfer.data.splits import Split
from lmtransfer.tasks.base import Prepared, Task
from lmtransfer.tasks.table import task_for


class LoadedRun:
    """A trained run: its resolved config, output labels and metrics, and what predicts with it."""

    directory: Path
    config: RunConfig
    labels: list[str]
    metrics: dict[str, Any]
    head: Any = None  # what the task decodes outputs with (the task model: a CRF tagger decodes by Viterbi)

    @cached_property
    def task(self) -> Task:
        return task_for(self.config)

    def ready(self) -> None:
        """Load what prediction needs (an encoder), so that what follows times prediction alone."""

    @property
    def tokenizer(self) -> Any:
        """The tokenizer its inputs go through, or None (a bag-of-words run counts words its own way)."""
        return None

    def prepare(self, split: Split) -> Prepared:
        """``split`` as this run's model reads it: here its texts as they are (a bag-of-words model, a prompt
        and label descriptions read them whole); a run whose model reads token ids tokenises them."""
        return self.task.prepare(split, None, self.labels)

    def outputs(
        self, prepared: Prepared, *, batch_size: int | None = None, progress: bool = False, from_cache: bool = False
    ) -> np.ndarray:
        """Raw outputs for ``prepared``, computed live from its inputs; with ``from_cache``, a feature-based
        run reads (and writes) its encoder's features through the feature cache instead."""
        raise NotImplementedError

    def evaluate(self, split: Split, progress: bool = False) -> dict[str, Any]:
        """The task's metrics on a labelled split (features through the cache, where the run has one)."""
        prepared, outputs = self.labelled_outputs(split, progress)
        return self.task.score(prepared, outputs, self.head, self.labels)

    def labelled_outputs(self, split: Split, progress: bool = False) -> tuple[Prepared, Any]:
        """A labelled split, checked against the run's labels and prepared, and the model's outputs on it
        (features through the cache, where the run has one): what scoring it needs."""
        self.task.check(split, self.labels)
        prepared = self.prepare(split)
        return prepared, self.outputs(prepared, progress=progress, from_cache=True)

    def predict(self, split: Split, batch_size: int | None = None) -> tuple[Prepared, list]:
        """One prediction per item of ``split``, computed live (raw input in, the task's output out)."""
        prepared = self.prepare(split)
        outputs = self.outputs(prepared, batch_size=batch_size)
        return prepared, self.task.predictions(prepared, outputs, self.head, self.labels)
