"""A search's best trial made into its comparison row's run, instead of training that run again.

The trial of the first seed that a search chooses is the very run its row would train: the same resolved
config but for where it is written and whether test is scored (``train.score_test`` is false for trials,
so that a search never sees test). So compare copies the trial's folder to the row's, writes the row's
config into it, and scores the test split the trial left unscored, as ``lmtransfer evaluate`` would; what
training cost stays the trial's own (its metrics.json).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from lmtransfer.config.schema import RunConfig
from lmtransfer.core.atomic import atomic_write_bytes, atomic_write_text, write_dir
from lmtransfer.runs.directory import write_card
from lmtransfer.runs.kinds import load_run, way_of
from lmtransfer.runs.results import UNITS_SUFFIX
from lmtransfer.tasks.units import Units


def adopt_run(trial_dir: str | Path, config: RunConfig, progress: bool = False) -> tuple[Path, dict[str, Any]]:
    """Copy ``trial_dir`` to ``config.output_dir`` as the run of ``config`` (which must differ from the
    trial's only in where it is written and in scoring test) and score its test split there. Returns the
    folder and the test metrics (empty where the config has no test split)."""
    trial_dir = Path(trial_dir)

    def fill(folder: Path) -> None:
        shutil.copytree(trial_dir, folder, dirs_exist_ok=True, ignore=shutil.ignore_patterns("checkpoints", "logs"))
        (folder / "config.yaml").write_text(config.to_yaml(), encoding="utf-8")

    directory = write_dir(config.output_dir, fill)
    run = load_run(directory)
    test = run.task.load().get("test")
    if test is None:
        return directory, {}
    prepared, outputs = run.labelled_outputs(test, progress)
    scored = run.task.scored(prepared, outputs, run.head, run.labels)
    found = run.task.predictions(prepared, outputs, run.head, run.labels)
    predictions = directory / "predictions"
    predictions.mkdir(exist_ok=True)
    atomic_write_text(predictions / f"test{run.task.prediction_suffix}", run.task.prediction_file(prepared, found))
    atomic_write_bytes(predictions / f"test{UNITS_SUFFIX}", scored.units.to_bytes())
    metrics = json.loads((directory / "metrics.json").read_text(encoding="utf-8"))
    ordered = {"dev": metrics.pop("dev")} if "dev" in metrics else {}  # dev, test, then the rest, as training writes
    ordered |= {"test": scored.metrics, **metrics}
    if "sizes" in ordered:  # the trial's, which had no test split scored
        ordered["sizes"] = {**ordered["sizes"], "test": prepared.size}
    atomic_write_text(directory / "metrics.json", json.dumps(ordered, indent=2) + "\n")
    write_card(directory, way_of(run.config))
    return directory, scored.metrics


def run_units(directory: Path) -> dict[str, Units]:
    """The evaluation units a run folder holds, per split."""
    found = sorted((directory / "predictions").glob(f"*{UNITS_SUFFIX}"))
    return {path.name.removesuffix(UNITS_SUFFIX): Units.from_bytes(path.read_bytes()) for path in found}
