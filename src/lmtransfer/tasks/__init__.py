"""The tasks lmtransfer trains, by the name ``task:`` takes in a config (a plain dict, no registry magic).

- ``classification``: one label per text or sentence pair (softmax);
- ``multilabel``: any number of labels per text (a sigmoid each);
- ``regression``: one score per text or pair (STS-B style);
- ``tagging``: one tag per word of CoNLL column files (NER), with BiLSTM / CRF heads;
- ``qa``: extractive question answering on SQuAD v1.1 / v2 JSON.
"""

from __future__ import annotations

from lmtransfer.config import RunConfig
from lmtransfer.tasks.base import Prepared, Task
from lmtransfer.tasks.ner import TaggingTask
from lmtransfer.tasks.squad import QATask
from lmtransfer.tasks.text import ClassificationTask, MultilabelTask, RegressionTask

TASKS: dict[str, type[Task]] = {
    "classification": ClassificationTask,
    "multilabel": MultilabelTask,
    "regression": RegressionTask,
    "tagging": TaggingTask,
    "qa": QATask,
}


def task_for(config: RunConfig) -> Task:
    """The task a config names, checked against its head and metric choices."""
    task = TASKS[config.task](config)
    metric = config.train.metric
    if metric is None:
        config.train.metric = task.metrics[0]
    elif metric not in task.metrics:
        raise config.error("train.metric", f"task '{config.task}' reports {', '.join(task.metrics)}; not '{metric}'")
    return task


__all__ = ["TASKS", "Prepared", "Task", "task_for"]
