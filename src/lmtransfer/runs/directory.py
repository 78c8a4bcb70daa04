"""Run directories: everything needed to reload a trained model, written atomically as a whole.

config.yaml          the resolved config (every default filled in): exactly what ran
model.safetensors    scalar mix + head weights
layer_weights.json   the learned mix: hidden-state indices, softmax weights, gamma
labels.json          output names in output order (classes, tags); regression: the train targets' range; qa: none
predictions/         dev and test predictions in the task's own format (JSONL, CoNLL, SQuAD JSON), and
                     what each evaluation unit scored ({split}.units.npz, for compare's intervals)
encoder.json         which encoder, with weight and tokenizer hashes
metrics.json         dev / test metrics, training history, costs
README.md            the model card: Hub metadata (model-index), results, how it was trained and how to use it
encoder/             fine-tuned runs: the trained encoder in Hugging Face format (LoRA merged in)
adapter/             LoRA runs: the adapters alone (peft)
checkpoints/         training checkpoints (the last few, and the best on dev)
logs/                TensorBoard's event files, with ``train.report_to: [tensorboard]``

A bag-of-words run holds ``bag_of_words.json`` and ``bag_of_words.safetensors`` instead of a head.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from safetensors.torch import save_file

from lmtransfer.config.build import build
from lmtransfer.config.schema import RunConfig
from lmtransfer.config.source import ConfigSource
from lmtransfer.core.atomic import atomic_write_text, write_dir
from lmtransfer.core.errors import LmtError
from lmtransfer.nn.task_model import TaskModel
from lmtransfer.runs.card import run_card
from lmtransfer.runs.way import Way


def save_run(
    directory: str | Path,
    config: RunConfig,
    model: TaskModel | None,
    labels: list[str],
    encoder_info: dict[str, Any],
    metrics: dict[str, Any],
    export: Callable[[Path], None] | None = None,
    files: dict[str, str | bytes] | None = None,
    *,
    way: Way,
) -> Path:
    """Write the run into a temporary sibling folder, then rename it into place (replacing an old run).

    ``export(folder)`` may add files (a fine-tuned encoder), ``files`` maps relative paths to text or bytes
    to write (predictions, their evaluation units); ``way`` (what trained it) is for its model card. The old
    run's ``checkpoints/`` and ``logs/`` (TensorBoard's) are kept.
    A kill at any moment leaves the old run or the new one whole (see ``replace_dir``).
    """

    def fill(folder: Path) -> None:
        if export is not None:
            export(folder)
        for name, content in (files or {}).items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                (folder / name).write_bytes(content)
            else:
                (folder / name).write_text(content, encoding="utf-8")
        (folder / "config.yaml").write_text(config.to_yaml(), encoding="utf-8")
        written: list[tuple[str, Any]] = [("labels", labels), ("encoder", encoder_info), ("metrics", metrics)]
        if model is not None:  # None: a bag-of-words baseline, whose ``export`` writes its own model files
            state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
            save_file(state, folder / "model.safetensors")
            written.append(("layer_weights", {"layers": encoder_info["layers"], **model.mix.layer_weights()}))
        for name, obj in written:
            (folder / f"{name}.json").write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
        card = run_card(config, way, labels, encoder_info, metrics, Path(directory))
        (folder / "README.md").write_text(card, encoding="utf-8")  # the model card (Hub format)

    return write_dir(directory, fill, keep=("checkpoints", "logs"))


def run_config(directory: Path) -> RunConfig:
    """The resolved config a run directory was trained with."""
    try:
        raw = yaml.safe_load((directory / "config.yaml").read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise LmtError(f"config.yaml: not valid YAML ({getattr(exc, 'problem', exc)})", path=directory) from None
    if not isinstance(raw, dict):
        raise LmtError("config.yaml: not a mapping of config sections", path=directory)
    features = raw.get("features")
    if isinstance(features, dict) and "pair" not in features:
        features["pair"] = "joint"  # saved before features.pair existed: its pairs were read together
    return build(raw, ConfigSource(directory / "config.yaml", {}, {}))


def read_json(directory: Path, name: str) -> Any:
    return json.loads((directory / name).read_text(encoding="utf-8"))


def write_card(folder: Path, way: Way) -> Path:
    """(Re)write the model card (README.md) of a run folder, trained by ``way``, from the files it holds."""
    metrics = read_json(folder, "metrics.json") if (folder / "metrics.json").is_file() else {}
    labels, encoder = read_json(folder, "labels.json"), read_json(folder, "encoder.json")
    card = run_card(run_config(folder), way, labels, encoder, metrics, folder)
    atomic_write_text(folder / "README.md", card)
    return folder / "README.md"
