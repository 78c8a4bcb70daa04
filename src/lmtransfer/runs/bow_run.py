"""The bag-of-words baseline as a run: fitted on the training split (``lmtransfer.encoders.bow``), scored on
dev and test, written as any run is (config, labels, metrics, predictions) with its model files instead of
a head, and loaded back behind the same interface as every other run."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmtransfer.config.schema import RunConfig
from lmtransfer.core.atomic import existing_dir
from lmtransfer.core.devices import make_accelerator, peak_memory
from lmtransfer.core.errors import LmtError
from lmtransfer.encoders.bow import SETTINGS_FILE, WEIGHTS_FILE, BagOfWords, fit_features, texts_of
from lmtransfer.runs.base import LoadedRun
from lmtransfer.runs.directory import read_json, run_config, save_run
from lmtransfer.runs.results import Costs, TrainResult, score_splits
from lmtransfer.runs.tracking import begin, finish, trackers_for
from lmtransfer.runs.way import TrainOptions
from lmtransfer.tasks.base import Prepared
from lmtransfer.tasks.table import TaskData


@dataclass
class BagOfWordsRun(LoadedRun):
    """A trained bag-of-words run loaded back: its config, labels and model."""

    directory: Path
    config: RunConfig
    labels: list[str]
    model: BagOfWords
    metrics: dict[str, Any]

    @staticmethod
    def holds(directory: str | Path) -> bool:
        """Whether ``directory`` holds a bag-of-words run (rather than an encoder's)."""
        return (existing_dir(Path(directory)) / SETTINGS_FILE).is_file()

    @classmethod
    def load(cls, directory: str | Path) -> BagOfWordsRun:
        directory = existing_dir(Path(directory))
        needed = ("config.yaml", "labels.json", SETTINGS_FILE, WEIGHTS_FILE)
        missing = [name for name in needed if not (directory / name).is_file()]
        if missing:
            raise LmtError(f"not a bag-of-words run directory (missing {', '.join(missing)})", path=directory)
        metrics = read_json(directory, "metrics.json") if (directory / "metrics.json").is_file() else {}
        config, labels = run_config(directory), read_json(directory, "labels.json")
        return cls(directory, config, labels, BagOfWords.load(directory), metrics)

    def outputs(
        self, prepared: Prepared, *, batch_size: int | None = None, progress: bool = False, from_cache: bool = False
    ) -> np.ndarray:
        return self.model.outputs(texts_of(prepared.examples))  # (N, K)


@dataclass(frozen=True)
class BagOfWordsWay:
    """The bag-of-words baseline as a way to train (``encoder.model: counts`` or ``tfidf``)."""

    name: str = "bag-of-words"
    kind: str = "baseline"
    tag: str = "bag-of-words"
    baseline: bool = True
    trains_encoder: bool = False
    color: str = "#888888"

    def train(self, data: TaskData, *, options: TrainOptions) -> TrainResult:
        """Fit in one step: there is no progress to show, nothing to resume, no accelerator to use and no
        evaluation to prune after, so ``options`` change nothing."""
        return train_bag_of_words(data, self)


BAG_OF_WORDS_WAY = BagOfWordsWay()


def train_bag_of_words(data: TaskData, way: BagOfWordsWay) -> TrainResult:
    """Fit the vocabulary and linear model on train, score dev and test, write the run directory."""
    config, task, labels = data.config, data.task, data.labels
    prepared = {name: task.prepare(split, None, labels) for name, split in data.splits.items()}
    began = time.perf_counter()
    enc = config.encoder
    train_texts = texts_of(prepared["train"].examples)
    start = time.perf_counter()
    vocabulary, idf, x = fit_features(enc.model, train_texts, enc.ngrams, enc.min_count)
    featurize = time.perf_counter() - start
    start = time.perf_counter()
    weight, bias = task.fit_bag_of_words(x, prepared["train"].targets, config.train.seed)
    fit_seconds = time.perf_counter() - start
    model = BagOfWords(enc.model, vocabulary, enc.ngrams, idf, weight.astype(np.float32), bias.astype(np.float32))
    start = time.perf_counter()
    scored = score_splits(task, prepared, labels, lambda split: model.outputs(texts_of(split.examples)))
    costs = Costs(
        strategy=way.name,
        trainable_parameters=int(weight.size + bias.size),
        train_seconds=fit_seconds,
        eval_seconds=time.perf_counter() - start,
        wall_seconds=time.perf_counter() - began,
        train_examples=len(train_texts),
        featurize_seconds=featurize,
        feature_bytes=int(x.data.nbytes + x.indices.nbytes + x.indptr.nbytes),
        **peak_memory(),
    )
    result = TrainResult.of(
        config,
        model,
        scored.metrics,
        prepared,
        costs,
        f"{len(vocabulary):,} bag-of-words features, scikit-learn linear model",
        vocabulary_size=len(vocabulary),
        units=scored.units,
    )
    info = {"name": enc.model, "source": "scikit-learn", "vocabulary_size": len(vocabulary), "layers": []}
    trackers = trackers_for(config)
    if trackers:  # one step, so the trackers get the config and the final numbers only
        acc = make_accelerator("no", 1, trackers)
        begin(acc, config)
        finish(acc, result)
    files = scored.files
    save_run(config.output_dir, config, None, labels, info, result.metrics, export=model.save, files=files, way=way)
    return result
