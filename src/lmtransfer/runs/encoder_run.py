"""A trained encoder run loaded back: the task model (scalar mix or concatenation, and a head) with the
encoder it was trained on, which predicts from raw inputs live, or from the feature cache when evaluating
a feature-based run."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.torch import load_file

from lmtransfer.config.schema import RunConfig
from lmtransfer.core.atomic import existing_dir
from lmtransfer.core.caches import cache_root
from lmtransfer.core.devices import pick_device, resolve_compute
from lmtransfer.core.errors import LmtError
from lmtransfer.data.splits import Split
from lmtransfer.encoders.encoder import Encoder
from lmtransfer.encoders.loading import load_encoder
from lmtransfer.features.backends import ExportingBackend, HiddenStates, backend_for, exporter
from lmtransfer.features.pooling import EncoderFeatures, FeatureSpec
from lmtransfer.nn.task_model import TaskModel
from lmtransfer.runs.base import LoadedRun
from lmtransfer.runs.directory import read_json, run_config
from lmtransfer.tasks.base import Prepared
from lmtransfer.tasks.table import task_for
from lmtransfer.training.datasets import CachedFeatureDataset, live_dataset
from lmtransfer.training.predict import predict_outputs
from lmtransfer.training.setup import extract_for, feature_spec, window_cap
from lmtransfer.training.strategies import LiveModel

EXPORT_INFO = "export.json"  # what `lmtransfer export` made the folder from; present only in an export


def export_encoder_folder(fmt: str) -> str:
    """Where an export holds its encoder (``encoder-onnx``: the ONNX graph, its tokenizer and model config)."""
    return f"encoder-{fmt}"


@dataclass
class Run(LoadedRun):
    """A run of an encoder (a transformer or static vectors) with a task model, loaded back from its
    directory: feature-based, or with its own fine-tuned encoder."""

    directory: Path
    config: RunConfig
    labels: list[str]
    layers: list[int]
    encoder_info: dict[str, Any]
    model: TaskModel
    metrics: dict[str, Any]
    _runner: HiddenStates | None = field(default=None, init=False, repr=False)

    @classmethod
    def load(cls, directory: str | Path) -> Run:
        directory = existing_dir(Path(directory))  # the old run, if a kill cut its replacement short
        needed = ("config.yaml", "model.safetensors", "labels.json", "encoder.json", "layer_weights.json")
        missing = [name for name in needed if not (directory / name).is_file()]
        if missing:
            raise LmtError(f"not a run directory (missing {', '.join(missing)})", path=directory)
        config = run_config(directory)
        labels, encoder_info = read_json(directory, "labels.json"), read_json(directory, "encoder.json")
        model = task_for(config).build_model(len(encoder_info["layers"]), encoder_info["hidden_size"], labels)
        model.load_state_dict(load_file(directory / "model.safetensors"))
        model.eval()
        metrics = read_json(directory, "metrics.json") if (directory / "metrics.json").is_file() else {}
        return cls(directory, config, labels, encoder_info["layers"], encoder_info, model, metrics)

    @property
    def own_encoder(self) -> Path | None:
        """The run's trained encoder (fine-tuning, LoRA merged), or None for a feature-based run."""
        folder = self.directory / "encoder"
        return folder if folder.is_dir() else None

    @cached_property
    def export_format(self) -> str | None:
        """The format of an artefact of `lmtransfer export` (its encoder without torch weights); None for a run."""
        return read_json(self.directory, EXPORT_INFO)["format"] if (self.directory / EXPORT_INFO).is_file() else None

    @property
    def exported(self) -> bool:
        return self.export_format is not None

    def _export(self) -> tuple[ExportingBackend, Path]:
        """The backend that wrote this export, and the folder of its encoder."""
        fmt = self.export_format
        return exporter(fmt), self.directory / export_encoder_folder(fmt)

    def load_encoder(self) -> Encoder:
        """The run's encoder; warns when its weights are not the ones the run was trained on."""
        enc = self.config.encoder
        if self.exported:
            backend, folder = self._export()
            return backend.exported_encoder(folder, enc.model, self.encoder_info["weights_sha256"])
        source = str(self.own_encoder) if self.own_encoder else enc.model
        encoder = load_encoder(
            source,
            trust_remote_code=enc.trust_remote_code,
            revision=enc.revision,
            allow_pickle=enc.allow_pickle,
            oov=enc.oov,
        )
        if encoder.weights_hash() != self.encoder_info["weights_sha256"]:
            warnings.warn(
                f"{self.directory}: encoder '{enc.model}' has other weights than at training time", stacklevel=2
            )
        return encoder

    @property
    def head(self) -> TaskModel:
        return self.model

    @cached_property
    def encoder(self) -> Encoder:
        """The encoder prediction runs (loaded once, on first use)."""
        return self.load_encoder()

    def ready(self) -> None:
        self.encoder  # noqa: B018 (loads it)

    @property
    def tokenizer(self) -> Any:
        return self.encoder.tokenizer

    def prepare(self, split: Split) -> Prepared:
        return self.task.prepare(split, self.encoder.tokenizer, self.labels)

    def outputs(
        self, prepared: Prepared, *, batch_size: int | None = None, progress: bool = False, from_cache: bool = False
    ) -> np.ndarray:
        batch = batch_size or self.config.train.batch_size
        spec = feature_spec(self.config, self.encoder)
        if from_cache and self.own_encoder is None and not self.exported:  # features from (and to) the cache
            stored = extract_for(self.config, self.encoder, prepared.examples, spec, "evaluate", progress).cache
            dataset = CachedFeatureDataset(stored, prepared.targets, prepared.sides)
            return predict_outputs(self.model, dataset, batch, progress=progress)[0]
        dataset = live_dataset(self.encoder.tokenizer, prepared, spec, window_cap(self.config))
        return predict_outputs(self.live_model(spec), dataset, batch, progress=progress)[0]

    def hidden_states(self) -> HiddenStates:
        """What computes a feature run's live hidden states: its backend, as when its caches were made; or
        what computes an export's."""
        if self._runner is None:
            if self.exported:
                backend, folder = self._export()
                self._runner = backend.exported_hidden_states(folder, self.encoder)
            else:
                f = self.config.features
                device = pick_device(f.device)
                backend = backend_for(f.backend, device, resolve_compute(f.compute, device))
                root = cache_root(self.config.cache_dir)
                self._runner = backend.hidden_states(self.encoder, f.compute, root, f.quantize, False)
        return self._runner

    def live_model(self, spec: FeatureSpec) -> LiveModel:
        """The task model on the encoder, live; a feature run's features are rounded as in its cache."""
        feature_run = self.config.strategy == "feature"
        rounding = self.config.features.dtype if feature_run else None
        compute = self.config.features.compute if feature_run else "float32"
        encoder = self.encoder.freeze()
        runner = self.hidden_states() if feature_run or self.exported else None  # as the caches were made
        features = EncoderFeatures(encoder.model, spec, encoder.uses_token_type_ids, compute, runner)
        return LiveModel(features, self.model, rounding)
