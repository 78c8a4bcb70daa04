"""The Python API, one function per CLI command: extract, train, evaluate, predict, for every task and
every kind of run.

    from lmtransfer import load_config, train, evaluate, predict
    result = train(load_config("configs/bbc.yaml", ["strategy=finetune"]))
    predict(result.directory, ["Shares rose sharply in early trading."])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from accelerate import Accelerator

from lmtransfer.config.schema import RunConfig
from lmtransfer.core.choices import SPLITS
from lmtransfer.core.devices import launched_process
from lmtransfer.data.splits import Split
from lmtransfer.features.extraction import Extraction
from lmtransfer.runs.kinds import load_run, trainer_for
from lmtransfer.runs.results import TrainResult
from lmtransfer.runs.way import TrainOptions
from lmtransfer.tasks.base import Task
from lmtransfer.tasks.table import read_task_data
from lmtransfer.training.loop import AfterEvaluation
from lmtransfer.training.setup import config_encoder, extract_for, feature_spec, warn_if_cpu_busy


def extract(config: RunConfig, splits: Sequence[str] = SPLITS, progress: bool = True) -> dict[str, Extraction]:
    """Extract (or find cached) features for the config's data splits, as its task feeds them to the encoder."""
    data = read_task_data(config)
    # under `accelerate launch` every process extracts, each taking the shards no other holds (the
    # cache's locks share them out); the first process alone shows progress
    progress = progress and launched_process()[0] == 0
    warn_if_cpu_busy(progress)
    encoder = config_encoder(data.config)
    spec = feature_spec(data.config, encoder)
    done = {}
    for name in (n for n in splits if n in data.splits):
        examples = data.task.prepare(data.splits[name], encoder.tokenizer, data.labels).examples
        done[name] = extract_for(data.config, encoder, examples, spec, name, progress)
    return done


def train(
    config: RunConfig,
    progress: bool = True,
    resume: bool = False,
    accelerator: Accelerator | None = None,
    after_evaluation: AfterEvaluation | None = None,
) -> TrainResult:
    """Train the config's task and strategy end to end, evaluate on dev and test, write the run directory
    (with dev and test predictions in the task's format). Every input check happens before anything is
    written. With ``resume``, a run killed midway continues from its latest checkpoint. ``after_evaluation(step,
    dev score)`` returning True stops training after that dev evaluation (``compare.search``'s pruner uses it).
    These four are the way's ``runs.way.TrainOptions``.
    """
    options = TrainOptions(progress, resume, accelerator, after_evaluation)
    return trainer_for(config)(read_task_data(config), options=options)


def evaluate(run_dir: str | Path, data: Any = None, progress: bool = True) -> dict[str, Any]:
    """Metrics of a trained run on ``data``: a file in the task's format, a split as a task reads it, or
    (default) the test split its config describes (dev where there is no test)."""
    run = load_run(run_dir)
    return run.evaluate(_evaluation_split(run.task, data), progress)


def _evaluation_split(task: Task, data: Any) -> Split:
    """``data`` as a split: a file in the task's format, a split, or None for the config's test split (dev
    where there is none)."""
    if data is None:
        splits = task.load()
        return splits.get("test", splits["dev"])
    if isinstance(data, str | Path):
        return task.read(data)
    return data


def predict(run_dir: str | Path, inputs: Sequence[Any], batch_size: int | None = None) -> list[Any]:
    """Predictions for raw inputs, computed live with the run's encoder: texts (or pairs) for text tasks,
    texts or word lists for tagging, {"question", "context"} dicts for qa."""
    run = load_run(run_dir)
    return run.predict(run.task.parse(list(inputs)), batch_size)[1]


def predict_file(run_dir: str | Path, path: str | Path, batch_size: int | None = None) -> str:
    """Predictions for a file in the run's task format (labels, if any, ignored), as the task's own
    prediction file: JSONL for text tasks, CoNLL columns with the predicted tag added, SQuAD answers JSON."""
    run = load_run(run_dir)
    prepared, found = run.predict(run.task.read(path, labelled=False), batch_size)
    return run.task.prediction_file(prepared, found)
