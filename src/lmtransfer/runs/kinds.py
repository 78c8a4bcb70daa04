"""The kinds of run, and the one place that decides which kind a config trains or a directory holds: the
bag-of-words baseline (``encoder.model: counts`` or ``tfidf``; a ``bag_of_words.json`` in the folder), or
an encoder with a task model (everything else)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lmtransfer.config.schema import RunConfig
from lmtransfer.core.choices import BAG_OF_WORDS
from lmtransfer.runs.base import LoadedRun
from lmtransfer.runs.bow_run import BagOfWordsRun, train_bag_of_words
from lmtransfer.runs.encoder_run import Run
from lmtransfer.runs.encoder_train import train_encoder_run
from lmtransfer.runs.results import TrainResult


def trainer_for(config: RunConfig) -> Callable[..., TrainResult]:
    """What trains the kind of run ``config`` describes: ``(task data, progress, resume, accelerator,
    after_evaluation)`` in, the written run's result out."""
    # a scikit-learn baseline has no encoder, cache or training loop
    return train_bag_of_words if config.encoder.model in BAG_OF_WORDS else train_encoder_run


def load_run(directory: str | Path) -> LoadedRun:
    """The run in ``directory``, whichever kind it is."""
    return (BagOfWordsRun if BagOfWordsRun.holds(directory) else Run).load(directory)
