"""What a way to train is: the protocol every way implements (feature-based, fine-tuning, LoRA, the
bag-of-words baseline) and the options a caller gives its trainer beside the config.

A way decides what is built from the task data and which parameters train (its ``train``), what its run
records as costs (the ``Costs`` of the ``TrainResult`` it returns), what compare's report calls its rows
(``kind``) and what the model card calls it (``tag``). ``runs.kinds.WAYS`` registers the ways by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from accelerate import Accelerator

    from lmtransfer.runs.results import TrainResult
    from lmtransfer.tasks.table import TaskData
    from lmtransfer.training.loop_state import AfterEvaluation


@dataclass(frozen=True)
class TrainOptions:
    """How a run trains, beyond its config: what the caller (the CLI, compare, a user of ``api.train``)
    decides. A way uses those that apply to it (a baseline fitted in one step has no epochs to prune)."""

    progress: bool = True  # progress bars and the loop's lines on stderr
    resume: bool = False  # go on from the latest checkpoint of a run killed midway
    accelerator: Accelerator | None = None  # the caller's, with its own trackers (None: one made for the config)
    after_evaluation: AfterEvaluation | None = None  # (step, dev score) -> stop now? (a search's pruner)


class Way(Protocol):
    """One way to train, registered by ``name`` in ``runs.kinds.WAYS``."""

    name: str  # a ``strategy`` of the config, or "bag-of-words"
    kind: str  # what compare's report and verdict call its rows: "feature-based", "fine-tuning", "baseline"
    tag: str  # what its model card calls it (a Hub tag, and the card's "Way:" line)
    baseline: bool  # the verdict sets the best baseline against the best of the other ways
    trains_encoder: bool  # its run folder holds a trained encoder (which transformers can load)
    color: str  # its kind's colour in the report's plots

    def train(self, data: TaskData, *, options: TrainOptions) -> TrainResult:
        """Build and train the run of ``data.config``, score dev and test, write the run folder."""
        ...
