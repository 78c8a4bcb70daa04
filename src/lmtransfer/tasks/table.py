"""The tasks lmtransfer trains, by the name ``task:`` takes in a config (a plain dict), how a new one is
added (``register_task``), and reading a config's task data with every input check done before anything
is written.

- ``classification``: one label per text or sentence pair (softmax);
- ``multilabel``: any number of labels per text (a sigmoid each);
- ``regression``: one score per text or pair (STS-B style);
- ``tagging``: one tag per word of CoNLL column files (NER), with BiLSTM / CRF heads;
- ``qa``: extractive question answering on SQuAD v1.1 / v2 JSON.
"""

from __future__ import annotations

from dataclasses import dataclass

from lmtransfer.config.build import changed
from lmtransfer.config.schema import RunConfig
from lmtransfer.core import choices
from lmtransfer.data.splits import Split
from lmtransfer.tasks.base import Task
from lmtransfer.tasks.qa import QATask
from lmtransfer.tasks.tagging import TaggingTask
from lmtransfer.tasks.text import ClassificationTask, MultilabelTask, RegressionTask

# the classes of the names in lmtransfer.core.choices.TASKS (a test checks that the two agree)
TASKS: dict[str, type[Task]] = {
    "classification": ClassificationTask,
    "multilabel": MultilabelTask,
    "regression": RegressionTask,
    "tagging": TaggingTask,
    "qa": QATask,
}


def register_task(task: type[Task], granularity: str, heads: tuple[str, ...]) -> None:
    """Add a task: its class under ``task.name``, and the names a config checks it by (``core.choices``: the
    features its head reads, its metrics ``task.metrics``, the heads it takes). A plug-in calls it once,
    when it is imported; every layer above finds the task's behaviour on the class."""
    choices.TASK_GRANULARITY[task.name] = granularity
    choices.TASK_METRICS[task.name] = task.metrics
    choices.TASK_HEADS[task.name] = heads
    TASKS[task.name] = task


def task_for(config: RunConfig) -> Task:
    """The task a (resolved) config names."""
    return TASKS[config.task](config)


@dataclass
class TaskData:
    """A config's task data as read and checked: the config (with what the data decided in it), its task,
    the splits, and the task's output labels (from train)."""

    config: RunConfig
    task: Task
    splits: dict[str, Split]
    labels: list[str]


def read_task_data(config: RunConfig) -> TaskData:
    """Read and check the config's splits; every input check happens here, before anything is written."""
    task = task_for(config)
    splits = task.load()
    facts = task.data_facts(splits)
    if facts:  # the resolved config records what the data decided (the tag scheme found)
        config = changed(config, facts)
        task = task_for(config)
    labels = task.fit_labels(splits["train"])
    for name, split in splits.items():
        if name != "train":
            task.check(split, labels)
    if not config.train.score_test:  # a search trial: chosen by dev, the test split stays unseen
        splits = {name: split for name, split in splits.items() if name != "test"}
    return TaskData(config, task, splits, labels)
