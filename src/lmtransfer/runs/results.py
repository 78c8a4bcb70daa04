"""What training returns: a typed result with typed costs. The CLI's summary, compare's rows and the run's
``metrics.json`` all read these fields; ``metrics`` is the JSON the run directory holds."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmtransfer.config.schema import RunConfig
from lmtransfer.core.devices import hardware
from lmtransfer.tasks.units import Units
from lmtransfer.training.convergence import Convergence

if TYPE_CHECKING:
    import numpy as np

    from lmtransfer.tasks.base import Prepared, Task

UNITS_SUFFIX = ".units.npz"  # predictions/dev.units.npz: the split's units, for compare's bootstrap


@dataclass
class SplitScores:
    """Dev and test scored by a run that needs no training loop: each split's metrics, evaluation units, the
    seconds its outputs took, and the files of its predictions and units for the run folder."""

    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    units: dict[str, Units] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    files: dict[str, str | bytes] = field(default_factory=dict)


def score_splits(
    task: Task, prepared: dict[str, Prepared], labels: list[str], outputs: Callable[[Prepared], np.ndarray]
) -> SplitScores:
    """Score dev and test (those there are) from ``outputs(prepared split)``, (N, K) per split."""
    out = SplitScores()
    for name in (n for n in ("dev", "test") if n in prepared):
        start = time.perf_counter()
        found = outputs(prepared[name])
        out.seconds[name] = time.perf_counter() - start
        scored = task.scored(prepared[name], found, None, labels)
        out.metrics[name], out.units[name] = scored.metrics, scored.units
        out.files[f"predictions/{name}{UNITS_SUFFIX}"] = scored.units.to_bytes()
        rows = task.predictions(prepared[name], found, None, labels)
        out.files[f"predictions/{name}{task.prediction_suffix}"] = task.prediction_file(prepared[name], rows)
    return out


@dataclass(frozen=True)
class ExtractionCosts:
    """Getting a feature-based run's features: extracting them, or finding them in the cache (0 tokens)."""

    seconds: float
    tokens: int
    cache_bytes: int  # of the layers the run reads
    caches: dict[str, str]  # split -> cache directory
    made_seconds: float | None = None  # what making its caches took, now or earlier (None: not recorded)
    compute: str | None = None  # the encoder's arithmetic the caches were made with (compute: auto resolved)

    @property
    def tokens_per_second(self) -> float | None:
        return self.tokens / self.seconds if self.tokens else None


@dataclass(frozen=True)
class LoopCosts:
    """What the training loop counted (runs trained by it: every run but the bag-of-words baseline)."""

    fit_seconds: float  # the whole fit, dev evaluation included
    train_tokens: int  # real tokens through a live encoder (0 for feature-based runs)
    optimizer_steps: int
    processes: int
    mixed_precision: str


@dataclass(frozen=True)
class PromptCosts:
    """What prompting costs: nothing to train, and every prediction reads the whole prompt."""

    shots: int
    tokens_per_example: float  # the prefix, the text and the label words the model reads per example
    label_seconds: dict[str, float]  # split -> seconds to label it
    examples_per_second: float | None  # labelled, dev and test together
    load_seconds: float  # loading the model (and hashing its weights)

    def to_json(self) -> dict[str, Any]:
        return {
            "shots": self.shots, "prompt_tokens_per_example": self.tokens_per_example,
            "label_seconds": self.label_seconds, "prompt_examples_per_second": self.examples_per_second,
            "load_seconds": self.load_seconds,
        }  # fmt: skip


@dataclass(frozen=True)
class Costs:
    """What a run cost to train. ``extraction`` is there for feature-based runs; ``featurize_seconds`` and
    ``feature_bytes`` for the bag-of-words baseline, whose features are built in memory and never stored."""

    strategy: str  # feature, finetune, lora, prompt, zero-shot, or bag-of-words
    trainable_parameters: int
    train_seconds: float  # optimizer steps only (fitting the linear model, for bag of words)
    eval_seconds: float
    wall_seconds: float
    train_examples: int
    peak_rss_bytes: int
    peak_gpu_bytes: int | None = None
    extraction: ExtractionCosts | None = None
    loop: LoopCosts | None = None
    featurize_seconds: float | None = None
    feature_bytes: int | None = None
    prompting: PromptCosts | None = None

    @property
    def extract_seconds(self) -> float | None:
        """Seconds to get the features: extraction (or the cache lookup), or building the counts."""
        return self.extraction.seconds if self.extraction else self.featurize_seconds

    @property
    def cache_bytes(self) -> int:
        return self.extraction.cache_bytes if self.extraction else 0

    @property
    def caches(self) -> dict[str, str]:
        return self.extraction.caches if self.extraction else {}

    @property
    def train_examples_per_second(self) -> float | None:
        return self.train_examples / self.train_seconds if self.train_seconds else None

    @property
    def train_tokens_per_second(self) -> float | None:
        """Real tokens through a live encoder per second of training (None: no encoder trained)."""
        tokens = self.loop.train_tokens if self.loop else 0
        return tokens / self.train_seconds if tokens else None

    @property
    def extraction_shared(self) -> bool:
        """The features were all in the cache already (another run, or compare's shared step, made them)."""
        return self.extraction is not None and self.extraction.tokens == 0

    def to_json(self) -> dict[str, Any]:
        """The ``costs`` of metrics.json."""
        out: dict[str, Any] = {}
        if self.extraction is not None:
            e = self.extraction
            out |= {"extract_seconds": e.seconds, "extract_tokens": e.tokens}
            out |= {"extract_tokens_per_second": e.tokens_per_second, "cache_bytes": e.cache_bytes, "caches": e.caches}
            if e.compute is not None:
                out["extract_compute"] = e.compute
        out["strategy"] = self.strategy
        if self.feature_bytes is not None:
            out |= {"extract_seconds": self.featurize_seconds, "cache_bytes": 0, "feature_bytes": self.feature_bytes}
        out |= {"trainable_parameters": self.trainable_parameters, "train_seconds": self.train_seconds}
        if self.loop is not None:
            out["fit_seconds"] = self.loop.fit_seconds
        out |= {"eval_seconds": self.eval_seconds, "wall_seconds": self.wall_seconds}
        out["train_examples"] = self.train_examples
        if self.loop is not None:
            out |= {"train_tokens": self.loop.train_tokens, "optimizer_steps": self.loop.optimizer_steps}
        out["train_examples_per_second"] = self.train_examples_per_second
        if self.loop is not None:
            out["train_tokens_per_second"] = self.train_tokens_per_second
            out |= {"processes": self.loop.processes, "mixed_precision": self.loop.mixed_precision}
        if self.prompting is not None:
            out |= self.prompting.to_json()
        out["peak_rss_bytes"] = self.peak_rss_bytes
        if self.peak_gpu_bytes is not None:
            out["peak_gpu_bytes"] = self.peak_gpu_bytes
        return out


@dataclass
class TrainResult:
    """A trained run: where it was written, its metrics and costs, and the trained model in memory."""

    directory: Path
    config: RunConfig  # what ran (resolved, with what the data decided)
    model: Any  # the trained model: mix + head (with its encoder when live), or the bag-of-words model
    dev: dict[str, Any] | None
    test: dict[str, Any] | None
    sizes: dict[str, int]  # items per split (texts, sentences, questions)
    costs: Costs
    description: str  # one line on what was learned: the layer weights, or the bag-of-words vocabulary
    best_epoch: int | None = None  # None: not trained by epochs (bag of words)
    history: list[dict[str, float]] = field(default_factory=list)
    pruned_step: int | None = None  # training stopped after this step's dev evaluation by a search's pruner
    convergence: Convergence | None = None  # what the dev curve says of the training length (None: bag of words)
    encoder_inputs: dict[str, int] | None = None  # examples per split as the encoder saw them (windows)
    vocabulary_size: int | None = None  # bag of words
    layer_weights: dict[str, Any] | None = None  # layer_weights.json (None: a bag-of-words run)
    units: dict[str, Units] = field(default_factory=dict)  # split -> what each evaluation unit scored

    @classmethod
    def of(cls, config: RunConfig, model: Any, scores: dict, prepared: dict, costs: Costs, description: str, **more):
        """The result of a run written to ``config.output_dir``: its scores per split and the items each
        prepared split held, as every way's trainer has them."""
        sizes = {name: split.size for name, split in prepared.items()}
        dev, test = scores.get("dev"), scores.get("test")
        return cls(Path(config.output_dir), config, model, dev, test, sizes, costs, description, **more)

    @property
    def task(self) -> str:
        return self.config.task

    @property
    def metrics(self) -> dict[str, Any]:
        """metrics.json: dev / test metrics, training history, sizes, costs, and the hardware it ran on."""
        out: dict[str, Any] = {name: m for name, m in (("dev", self.dev), ("test", self.test)) if m is not None}
        out["task"] = self.task
        if self.best_epoch is not None:
            out |= {"best_epoch": self.best_epoch, "history": self.history}
        if self.pruned_step is not None:
            out["pruned_step"] = self.pruned_step
        if self.convergence is not None:
            out["convergence"] = self.convergence.to_json()
        out["sizes"] = self.sizes
        if self.encoder_inputs is not None:
            out["encoder_inputs"] = self.encoder_inputs
        if self.vocabulary_size is not None:
            out["vocabulary_size"] = self.vocabulary_size
        return out | {"costs": self.costs.to_json(), "hardware": hardware()}


def describe_layers(weights: dict[str, Any]) -> str:
    """One line on a task model's layer combination: the scalar mix's weights, or the concatenated layers."""
    if "softmax" in weights:
        mix = "  ".join(f"{layer}:{w:.2f}" for layer, w in zip(weights["layers"], weights["softmax"]))
        return f"layer weights: {mix}  gamma {weights['gamma']:.2f}"
    return f"layers {weights['layers']}, concatenated"
