"""Run directories: everything needed to reload a trained model, written atomically as a whole.

config.yaml          the resolved config (every default filled in)
model.safetensors    scalar mix + head weights
layer_weights.json   the learned mix: hidden-state indices, softmax weights, gamma
labels.json          output names in output order (classes, tags; empty for regression and qa)
predictions/         dev and test predictions in the task's own format (JSONL, CoNLL, SQuAD JSON)
encoder.json         which encoder, with weight and tokenizer hashes
metrics.json         dev / test metrics, training history, costs
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from safetensors.torch import load_file, save_file

from lmtransfer.atomic import existing_dir, replace_dir, settle_dir
from lmtransfer.config import RunConfig
from lmtransfer.encoders import Encoder, load_encoder
from lmtransfer.errors import LmtError
from lmtransfer.heads import TaskModel


def save_run(
    directory: str | Path,
    config: RunConfig,
    model: TaskModel | None,
    labels: list[str],
    encoder_info: dict[str, Any],
    metrics: dict[str, Any],
    export: Callable[[Path], None] | None = None,
    files: dict[str, str] | None = None,
) -> Path:
    """Write the run into a temporary sibling folder, then rename it into place (replacing an old run).

    ``export(folder)`` may add files (a fine-tuned encoder), ``files`` maps relative paths to text to
    write (predictions); the old run's ``checkpoints/`` are kept.
    A kill at any moment leaves the old run or the new one whole (see ``replace_dir``).
    """
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    settle_dir(target)  # a replacement that a kill cut short: the old run back in place first
    for debris in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):  # folders of killed saves
        shutil.rmtree(debris, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        if export is not None:
            export(tmp)
        for name, text in (files or {}).items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text, encoding="utf-8")
        (tmp / "config.yaml").write_text(config.to_yaml(), encoding="utf-8")
        written: list[tuple[str, Any]] = [("labels", labels), ("encoder", encoder_info), ("metrics", metrics)]
        if model is not None:  # None: a bag-of-words baseline, whose ``export`` writes its own model files
            save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, tmp / "model.safetensors")
            written.append(("layer_weights", {"layers": encoder_info["layers"], **model.mix.layer_weights()}))
        for name, obj in written:
            (tmp / f"{name}.json").write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
        for path in tmp.rglob("*"):
            if path.is_file():
                with open(path, "rb") as handle:
                    os.fsync(handle.fileno())
        if (target / "checkpoints").is_dir():  # linked, not moved: the old run keeps its own until the swap
            shutil.copytree(target / "checkpoints", tmp / "checkpoints", copy_function=_link_or_copy)
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:  # a file system without hard links
        shutil.copy2(source, destination)


def run_config(directory: Path) -> RunConfig:
    """The resolved config a run directory was trained with."""
    try:
        raw = yaml.safe_load((directory / "config.yaml").read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise LmtError(f"config.yaml: not valid YAML ({getattr(exc, 'problem', exc)})", path=directory) from None
    return RunConfig.model_validate(raw)


def read_json(directory: Path, name: str) -> Any:
    return json.loads((directory / name).read_text(encoding="utf-8"))


@dataclass
class Run:
    """A trained run loaded back from its directory."""

    directory: Path
    config: RunConfig
    labels: list[str]
    layers: list[int]
    encoder_info: dict[str, Any]
    model: TaskModel
    metrics: dict[str, Any]

    @classmethod
    def load(cls, directory: str | Path) -> Run:
        directory = existing_dir(Path(directory))  # the old run, if a kill cut its replacement short
        needed = ("config.yaml", "model.safetensors", "labels.json", "encoder.json", "layer_weights.json")
        missing = [name for name in needed if not (directory / name).is_file()]
        if missing:
            raise LmtError(f"not a run directory (missing {', '.join(missing)})", path=directory)
        config = run_config(directory)
        labels, encoder_info = read_json(directory, "labels.json"), read_json(directory, "encoder.json")
        from lmtransfer.tasks import task_for  # tasks import data readers; runs are read far more often

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

    def load_encoder(self) -> Encoder:
        """The run's encoder; warns when its weights are not the ones the run was trained on."""
        enc = self.config.encoder
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
