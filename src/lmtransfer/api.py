"""The Python API, one function per CLI command: extract, train, evaluate, predict, for every task and
every kind of run.

    from lmtransfer import Run, load_config, train
    result = train(load_config("configs/bbc.yaml", strategy="finetune"))
    Run.load(result.directory).predict(["Shares rose sharply in early trading."])

``train`` also takes its data as tables in memory (``data=``, ``dev=``, ``test=``: pandas DataFrames,
``datasets.Dataset``s, mappings of columns, lists of row dicts, ``(texts, labels)``). ``evaluate`` and
``predict`` load the run at each call; ``Run.load`` loads it once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from accelerate import Accelerator

from lmtransfer.config.build import changed
from lmtransfer.config.schema import RunConfig
from lmtransfer.core.choices import SPLITS
from lmtransfer.core.devices import launched_process
from lmtransfer.core.errors import ConfigError, LmtError
from lmtransfer.data import memory
from lmtransfer.features.extraction import Extraction
from lmtransfer.runs.kinds import load_run, trainer_for
from lmtransfer.runs.loaded import Run
from lmtransfer.runs.results import TrainResult
from lmtransfer.runs.way import TrainOptions
from lmtransfer.tasks.table import TaskData, read_task_data
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
    *,
    data: Any = None,
    dev: Any = None,
    test: Any = None,
) -> TrainResult:
    """Train the config's task and strategy end to end, evaluate on dev and test, write the run directory
    (with dev and test predictions in the task's format). Every input check happens before anything is
    written. With ``resume``, a run killed midway continues from its latest checkpoint. ``after_evaluation(step,
    dev score)`` returning True stops training after that dev evaluation (``compare.search``'s pruner uses it).
    These four are the way's ``runs.way.TrainOptions``.

    ``data`` (and ``dev``, ``test``), tables in memory, take the place of the config's data files, with the
    columns its data section names; dev and test are held out of ``data`` where not given, as for files.
    """
    options = TrainOptions(progress, resume, accelerator, after_evaluation)
    task_data = read_task_data(config) if data is None else _memory_task_data(config, data, dev, test)
    return trainer_for(task_data.config)(task_data, options=options)


def _memory_task_data(config: RunConfig, train: Any, dev: Any, test: Any) -> TaskData:
    """The task data of tables in memory: the config made to name them by fingerprint (so the saved config
    says the data came from memory, and which it was), then read as files are, the tables lent meanwhile."""
    d = config.data
    tables = {"train": train, "dev": dev, "test": test}
    found = {name: memory.columns(t, d.text_column, d.label_column) for name, t in tables.items() if t is not None}
    named = {name: memory.fingerprint(columns) for name, columns in found.items()}
    config = changed(config, {"data.demo": None, "data.hf": None, **{f"data.{n}": named.get(n) for n in tables}})
    with memory.held({named[name]: columns for name, columns in found.items()}) as used:
        try:
            task_data = read_task_data(config)
        except LmtError as exc:
            if named["train"] in used:
                raise memory.in_rows(exc) from None
            raise ConfigError(f"task '{config.task}' reads files, not tables in memory ({exc})", field="task") from None
    if named["train"] not in used:
        raise ConfigError(f"task '{config.task}' reads files, not tables in memory", field="task")
    return task_data


def evaluate(run_dir: str | Path, data: Any = None, progress: bool = True) -> dict[str, Any]:
    """Metrics of a trained run (or a comparison folder's winner) on ``data``: a file in the task's format, a
    split as a task reads it, a table in memory, or (default) the test split its config describes (dev where
    there is no test). Loads the run each time; ``Run.load(run_dir).evaluate(data)`` keeps it."""
    return Run.load(run_dir).evaluate(data, progress)


def predict(run_dir: str | Path, inputs: Sequence[Any], batch_size: int | None = None) -> list[Any]:
    """Predictions for raw inputs, computed live with the run's encoder: texts (or pairs) for text tasks,
    texts or word lists for tagging, {"question", "context"} dicts for qa. Loads the run (and its encoder)
    each time; ``Run.load(run_dir).predict(inputs)`` loads them once."""
    return Run.load(run_dir).predict(inputs, batch_size)


def predict_file(run_dir: str | Path, path: str | Path, batch_size: int | None = None) -> str:
    """Predictions for a file in the run's task format (labels, if any, ignored), as the task's own
    prediction file: JSONL for text tasks, CoNLL columns with the predicted tag added, SQuAD answers JSON."""
    run = load_run(run_dir)
    prepared, found = run.predict(run.task.read(path, labelled=False), batch_size)
    return run.task.prediction_file(prepared, found)
