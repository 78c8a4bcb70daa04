"""Zero labels for any encoder (``strategy: zero-shot``): each label's description (its name, or
``prompt.verbalizer``'s text) and each text are embedded by the frozen encoder (``features.embeddings``), and
a text goes to the label whose description is nearest by cosine. Nothing trains; the run folder holds the
descriptions and their vectors, and the encoder is loaded again to embed new texts.

Its outputs are the cosines times ``SCALE``: the nearest label wins whatever the scale, and their softmax,
the probabilities a run reports, is not flattened to near-uniform by cosines that differ by hundredths.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from lmtransfer.config.schema import RunConfig
from lmtransfer.core.atomic import existing_dir
from lmtransfer.core.devices import peak_memory, pick_device
from lmtransfer.core.progress import Progress
from lmtransfer.data.examples import TextPair
from lmtransfer.encoders.encoder import Encoder
from lmtransfer.features.embeddings import sentence_embeddings
from lmtransfer.runs.base import LoadedRun
from lmtransfer.runs.directory import read_json, run_config, save_run
from lmtransfer.runs.results import Costs, TrainResult, score_splits
from lmtransfer.runs.way import TrainOptions
from lmtransfer.tasks.base import Prepared
from lmtransfer.tasks.prompts import label_words
from lmtransfer.tasks.table import TaskData
from lmtransfer.training.setup import config_encoder

ZERO_SHOT_FILE = "zero_shot.json"
SCALE = 20.0  # cosine -> logit (as a contrastive loss's temperature of 0.05 does)


@dataclass
class ZeroShotRun(LoadedRun):
    """A zero-shot run: its config and labels, each label's description and that description's vector."""

    directory: Path
    config: RunConfig
    labels: list[str]
    metrics: dict[str, Any]
    descriptions: tuple[str, ...]
    vectors: np.ndarray  # (K, H) unit vectors, in label order

    @staticmethod
    def holds(directory: str | Path) -> bool:
        return (existing_dir(Path(directory)) / ZERO_SHOT_FILE).is_file()

    @classmethod
    def load(cls, directory: str | Path) -> ZeroShotRun:
        directory = existing_dir(Path(directory))
        saved = read_json(directory, ZERO_SHOT_FILE)
        metrics = read_json(directory, "metrics.json") if (directory / "metrics.json").is_file() else {}
        vectors = np.asarray(saved["vectors"], dtype=np.float32)
        config, labels = run_config(directory), read_json(directory, "labels.json")
        return cls(directory, config, labels, metrics, tuple(saved["descriptions"]), vectors)

    def save(self, folder: Path) -> None:
        saved = {"descriptions": list(self.descriptions), "vectors": self.vectors.tolist()}
        (folder / ZERO_SHOT_FILE).write_text(json.dumps(saved, ensure_ascii=False) + "\n", encoding="utf-8")

    @cached_property
    def encoder(self) -> Encoder:
        encoder = config_encoder(self.config).freeze()
        encoder.model.to(pick_device(self.config.features.device))
        return encoder

    def ready(self) -> None:
        self.encoder  # noqa: B018 (loaded now, so that what follows times prediction alone)

    @property
    def tokenizer(self) -> Any:
        return self.encoder.tokenizer

    def outputs(
        self, prepared: Prepared, *, batch_size: int | None = None, progress: bool = False, from_cache: bool = False
    ) -> np.ndarray:
        """(N, K) each text's cosine with each label's description, times ``SCALE``."""
        if prepared.examples and isinstance(prepared.examples[0], TextPair):
            raise self.config.error(
                "strategy", "'zero-shot' sets one text against each label's description: for pairs, prompt or train"
            )
        bar = Progress(total=len(prepared.examples), desc="embedding", unit="text", disable=not progress, leave=False)
        with bar:
            texts = sentence_embeddings(
                self.encoder, prepared.examples, self.config.encoder.max_length,
                batch_size=batch_size or self.config.prompt.batch_size, advance=bar.update,
            )  # fmt: skip
        return SCALE * texts @ self.vectors.T  # (N, K)


@dataclass(frozen=True)
class ZeroShotWay:
    """The nearest label description by an encoder's embeddings (``strategy: zero-shot``): no labels used."""

    name: str = "zero-shot"
    kind: str = "zero-shot"
    tag: str = "zero-shot"
    baseline: bool = True  # the no-training baseline of an encoder: the verdict sets it against the ways
    trains_encoder: bool = False
    color: str = "#f28e2b"

    def train(self, data: TaskData, *, options: TrainOptions) -> TrainResult:
        """Nothing trains: embed the label descriptions, score dev and test, write the run."""
        return zero_shot_run(data, self, options.progress)


ZERO_SHOT_WAY = ZeroShotWay()


def zero_shot_run(data: TaskData, way: ZeroShotWay, progress: bool = True) -> TrainResult:
    config, task, labels = data.config, data.task, data.labels
    began = time.perf_counter()
    prepared = {name: task.prepare(split, None, labels) for name, split in data.splits.items()}
    descriptions = label_words(config, labels)
    run = ZeroShotRun(Path(config.output_dir), config, labels, {}, descriptions, np.zeros((0, 0), np.float32))
    run.vectors = sentence_embeddings(run.encoder, list(descriptions), config.encoder.max_length)  # (K, H)
    scored = score_splits(task, prepared, labels, lambda split: run.outputs(split, progress=progress))
    costs = Costs(
        strategy=way.name, trainable_parameters=0, train_seconds=0.0, eval_seconds=sum(scored.seconds.values()),
        wall_seconds=time.perf_counter() - began, train_examples=0, **peak_memory(),
    )  # fmt: skip
    description = "nearest label description by cosine: " + "; ".join(descriptions)
    result = TrainResult.of(config, run, scored.metrics, prepared, costs, description, units=scored.units)
    encoder = run.encoder
    info = {"name": encoder.name, "source": encoder.source, "weights_sha256": encoder.weights_hash(), "layers": []}
    info |= {"num_layers": encoder.num_layers, "hidden_size": encoder.hidden_size}
    save_run(config.output_dir, config, None, labels, info, result.metrics, run.save, scored.files, way=way)
    return result
