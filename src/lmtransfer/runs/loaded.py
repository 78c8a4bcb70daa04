"""The public loaded run, ``lmtransfer.Run``: a trained run (or a comparison folder's winner) loaded once, its
encoder on first use, then asked for predictions, probabilities and metrics from plain Python values.

    run = Run.load("runs/latest")
    run.predict(["Shares rose sharply."])        # [{"label": "business", "probabilities": {...}}]
    run.predict_proba(["Shares rose sharply."])  # array (1, len(run.labels)), columns in run.labels' order

It wraps the kind of run ``runs.kinds.load_run`` finds (``runs.base.LoadedRun``), which stays the interface
the CLI, the server and compare use.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lmtransfer.core.errors import LmtError
from lmtransfer.data import memory
from lmtransfer.data.splits import Split
from lmtransfer.data.tables import read_records
from lmtransfer.runs.base import LoadedRun
from lmtransfer.runs.kinds import load_run
from lmtransfer.runs.winner import winner_of


class Run:
    """A trained run, loaded: ``predict``, ``predict_proba``, ``evaluate``; ``labels``, ``task``, ``config``."""

    def __init__(self, loaded: LoadedRun, chosen: str | None = None) -> None:
        self.loaded = loaded
        self.chosen = chosen  # for a comparison folder: which run its verdict chose, and why

    @classmethod
    def load(cls, directory: str | Path) -> Run:
        """The run in ``directory``; for a comparison folder, the run its ``best.json`` names."""
        found = winner_of(directory)
        if found is None:
            return cls(load_run(directory))
        return cls(load_run(found[0]), found[1])

    def __repr__(self) -> str:
        return f"Run({str(self.directory)!r}, task={self.task!r}, labels={self.labels!r})"

    @property
    def directory(self) -> Path:
        return self.loaded.directory

    @property
    def config(self) -> Any:
        return self.loaded.config

    @property
    def task(self) -> str:
        """The task's name: classification, multilabel, regression, tagging, qa (or a registered one)."""
        return self.loaded.config.task

    @property
    def labels(self) -> list[str]:
        """The run's outputs in output order (classes, tags; a regression run's target range)."""
        return list(self.loaded.labels)

    @property
    def metrics(self) -> dict[str, Any]:
        """The metrics, history and costs its training wrote (``metrics.json``)."""
        return self.loaded.metrics

    def predict(self, inputs: Sequence[Any], batch_size: int | None = None) -> list[Any]:
        """One prediction per input, as the task gives it: texts (or pairs) for text tasks, texts or word lists
        for tagging, {"question", "context"} dicts for qa."""
        split = self.loaded.task.parse(list(inputs))
        return self.loaded.predict(split, batch_size)[1]

    def predict_proba(self, inputs: Sequence[Any], batch_size: int | None = None) -> np.ndarray:
        """(N, len(labels)) probabilities, columns in ``labels``' order, for a task whose predictions carry
        them (classification: they sum to 1; multilabel: one per label); other tasks are refused."""
        found = self.predict(inputs, batch_size)
        if not all(isinstance(row, dict) and "probabilities" in row for row in found):
            raise LmtError(f"a {self.task} run gives no probabilities; use predict", path=self.directory)
        return np.array([[row["probabilities"][label] for label in self.labels] for row in found], dtype=np.float64)

    def evaluate(self, data: Any = None, progress: bool = False) -> dict[str, Any]:
        """The task's metrics on ``data``: a file in the task's format, a split, a table in memory (a whole-text
        task's: as ``api.train`` takes it), or None for the test split the run's config names (dev where none)."""
        try:
            return self.loaded.evaluate(self.split(data), progress)
        except LmtError as exc:
            raise memory.in_rows(exc) from None

    def split(self, data: Any) -> Split:
        """``data`` as a labelled split of the run's task (see ``evaluate``)."""
        task = self.loaded.task
        if data is None:
            splits = task.load()
            return splits.get("test", splits["dev"])
        if isinstance(data, Split):
            return data
        if isinstance(data, str | Path):
            return task.read(data)
        d = self.config.data
        found = memory.columns(data, d.text_column, d.label_column)
        origin = memory.origin_of(memory.fingerprint(found), "evaluation")
        columns = d.text_column, d.label_column, d.text_pair_column
        return read_records(memory.records(found, origin), origin, *columns, getattr(task, "label_join", None))
