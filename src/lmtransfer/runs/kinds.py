"""The ways to train, registered by name, and the one place that decides which way trains a config and
which kind of run a directory holds: the bag-of-words baseline (``encoder.model: counts`` or ``tfidf``; a
``bag_of_words.json`` in the folder), or an encoder with a task model (everything else).

A new way is a module implementing ``runs.way.Way`` and one entry in ``WAYS`` with its name and training
defaults in ``core/choices.STRATEGY_DEFAULTS``; from a plug-in, one ``register_way`` call.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lmtransfer.config.schema import RunConfig
from lmtransfer.core.choices import BAG_OF_WORDS, TrainDefaults, add_strategy
from lmtransfer.runs.base import LoadedRun
from lmtransfer.runs.bow_run import BAG_OF_WORDS_WAY, BagOfWordsRun
from lmtransfer.runs.encoder_run import Run
from lmtransfer.runs.encoder_train import FEATURE, FINETUNE, LORA
from lmtransfer.runs.prompt_run import PROMPT_WAY, PromptRun
from lmtransfer.runs.results import TrainResult
from lmtransfer.runs.way import Way
from lmtransfer.runs.zero_shot_run import ZERO_SHOT_WAY, ZeroShotRun

WAYS: dict[str, Way] = {way.name: way for way in (FEATURE, FINETUNE, LORA, PROMPT_WAY, ZERO_SHOT_WAY, BAG_OF_WORDS_WAY)}
# the kinds of run folder that are not an encoder's with a task model, each telling its own from its files
OTHER_RUNS: tuple[type[LoadedRun], ...] = (BagOfWordsRun, PromptRun, ZeroShotRun)


def register_way(way: Way, defaults: TrainDefaults | None = None) -> Way:
    """Add a way from a plug-in: its trainer by name, and its name as a ``strategy`` a config may give, with
    the learning rate, epochs, fewest steps and patience it gets where the config names none (None: a way
    that trains nothing)."""
    WAYS[way.name] = way
    add_strategy(way.name, defaults)
    return way


def way_of(config: RunConfig) -> Way:
    """The way that trains ``config``: its strategy's, or the bag-of-words baseline's for a counts or tf-idf
    model (a scikit-learn baseline has no encoder, cache or training loop)."""
    return WAYS[BAG_OF_WORDS_WAY.name if config.encoder.model in BAG_OF_WORDS else config.strategy]


def trainer_for(config: RunConfig) -> Callable[..., TrainResult]:
    """What trains the run ``config`` describes: ``(task data, *, options: TrainOptions)`` in, the written
    run's result out."""
    return way_of(config).train


def load_run(directory: str | Path) -> LoadedRun:
    """The run in ``directory``, whichever kind it is."""
    return next((kind for kind in OTHER_RUNS if kind.holds(directory)), Run).load(directory)
