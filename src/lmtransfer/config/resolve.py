"""Config resolution, in one function: the config as written in, the config that runs out.

Every value that depends on other fields is decided here, and every rule between fields is checked here
with an error that names the field (and, through the config's source, its file and line): the strategy
that static vectors and baselines imply, the learning rate and epochs of the strategy, the features a
task's head reads and their pooling, the GLUE layout's columns, the task's head types and dev metric.
Nothing downstream changes a config; a value the data decides (the tag scheme ``auto`` finds) comes back
through ``lmtransfer.config.build.changed``, which resolves again.

Resolving a resolved config gives it back unchanged, so a saved ``config.yaml`` loads as it ran.
"""

from __future__ import annotations

from typing import Any

from lmtransfer.config.schema import RunConfig
from lmtransfer.config.source import ConfigSource, located
from lmtransfer.core import choices as c
from lmtransfer.core.backends import problem as backend_problem

STATIC_LR = 1e-3  # updating static vectors: the finetune default (5e-5) would barely move them
# The fewest optimizer steps a run takes, by strategy: a budget that does not shrink with the training set
# (each strategy's defaults are core.choices.STRATEGY_DEFAULTS).
DEFAULT_MIN_STEPS = {name: d.min_steps for name, d in c.STRATEGY_DEFAULTS.items() if d is not None}
PROMPT_MODEL = "smollm2"  # the causal LM a prompt run uses where encoder.model is not given


def resolve(written: RunConfig, source: ConfigSource | None = None) -> RunConfig:
    """The config that runs: every default filled in, every rule between fields checked."""
    fail = lambda field, message: located(source, field, message)  # noqa: E731
    if "granularity" in written.features.model_fields_set:  # else the task decides it, below
        _check_pooling(written.features.granularity, written.features.pooling, fail)
    _check_untrained(written, fail)
    _check_baseline(written, fail)
    _check_backend(written, fail)
    strategy = _strategy(written, fail)
    static = written.encoder.update_vectors or c.names_static_vectors(written.encoder.model)
    if static and strategy == "lora":
        raise fail(
            "encoder.model", "static vectors have no attention layers for strategy 'lora': use finetune or feature"
        )
    train = _train_defaults(written, strategy, static)
    features = _granularity(written, strategy, fail)
    train["metric"] = _metric(written, fail)
    _check_head(written, fail)
    features |= _reading(written, strategy, fail)
    top = {"strategy": strategy} if strategy != written.strategy else {}
    encoder = (
        {"model": PROMPT_MODEL} if strategy == "prompt" and "model" not in written.encoder.model_fields_set else {}
    )
    return _apply(written, top, train=train, features=features, data=_glue_columns(written.data), encoder=encoder)


def _train_defaults(written: RunConfig, strategy: str, static: bool) -> dict[str, Any]:
    """The strategy's learning rate, epochs, fewest steps and patience where the config names none (a way
    that trains nothing keeps its train section as written)."""
    defaults = c.STRATEGY_DEFAULTS[strategy]
    if defaults is None:
        return {}
    given = written.train
    found = {
        "lr": STATIC_LR if static and strategy == "finetune" else defaults.lr,
        "epochs": defaults.epochs,
        "min_steps": defaults.min_steps,
        "patience": defaults.patience,
    }
    return {name: value for name, value in found.items() if getattr(given, name) is None}


def _check_untrained(config: RunConfig, fail) -> None:
    """Prompting and label descriptions score a text against each label: classification of single texts or
    pairs, read whole up to encoder.max_length, by a pretrained model."""
    if config.strategy not in c.UNTRAINED:
        return
    if config.task != "classification":
        what = "label words" if config.strategy == "prompt" else "label descriptions"
        raise fail("strategy", f"'{config.strategy}' scores {what}: it takes task classification, not '{config.task}'")
    model = config.encoder.model
    if model in c.BASELINES or c.names_static_vectors(model):
        raise fail("encoder.model", f"strategy '{config.strategy}' needs a pretrained transformer, not '{model}'")
    if config.encoder.long_text == "windows":
        raise fail("encoder.long_text", f"strategy '{config.strategy}' reads each text once, cut at encoder.max_length")


def _check_backend(config: RunConfig, fail) -> None:
    """The backend's own rules (``core.backends``): the arithmetic it computes in, the weights it quantises."""
    f = config.features
    found = backend_problem(f.backend, f.compute, f.quantize)
    if found is not None:
        raise fail(*found)


def _apply(config: RunConfig, top: dict[str, Any], **sections: dict[str, Any]) -> RunConfig:
    """``config`` with top-level fields and section fields replaced (the values are already checked)."""
    update = dict(top)
    for name, fields in sections.items():
        if fields:
            update[name] = getattr(config, name).model_copy(update=fields)
    return config.model_copy(update=update) if update else config


def _check_pooling(granularity: str, pooling: str, fail) -> None:
    allowed = c.GRANULARITY_POOLING[granularity]
    if pooling not in allowed:
        raise fail(
            "features.pooling",
            f"'{pooling}' does not apply to granularity '{granularity}' (choose one of {', '.join(allowed)})",
        )


def _check_baseline(config: RunConfig, fail) -> None:
    """Bag-of-words encoders feed scikit-learn linear models of whole texts; scratch vectors must train."""
    model = config.encoder.model
    if model in c.BAG_OF_WORDS:
        if c.TASK_GRANULARITY[config.task] != "sentence":
            raise fail("encoder.model", f"'{model}' has no word positions, so it cannot do task '{config.task}'")
        if config.strategy != "feature" or config.encoder.update_vectors:
            raise fail("strategy", f"'{model}' features feed a linear model; there is no encoder to fine-tune")
        if config.head.type != "linear":
            raise fail("head.type", f"'{model}' goes to scikit-learn's linear model, not '{config.head.type}'")
    if model == c.SCRATCH and config.strategy == "feature" and "strategy" in config.model_fields_set:
        raise fail("strategy", "vectors trained from scratch must train ('finetune'); frozen they are noise")


def _strategy(config: RunConfig, fail) -> str:
    """Scratch vectors and updated static vectors are fine-tuned whatever the default says."""
    if config.encoder.update_vectors:
        if "strategy" in config.model_fields_set and config.strategy != "finetune":
            raise fail(
                "encoder.update_vectors",
                f"updating vectors is strategy 'finetune', not '{config.strategy}' (drop one of the two)",
            )
        return "finetune"
    return "finetune" if config.encoder.model == c.SCRATCH else config.strategy


def _granularity(config: RunConfig, strategy: str, fail) -> dict[str, str]:
    """The features the task's head reads, with a pooling that fits them: only feature extraction for
    classification may take word or token features of its own choosing (``lmtransfer extract``)."""
    features = config.features
    granularity = c.task_granularity(config.task, config.head.type)
    if features.granularity == granularity:
        _check_pooling(granularity, features.pooling, fail)
        return {}
    if "granularity" in features.model_fields_set:
        if (config.task, strategy) != ("classification", "feature"):
            raise fail("features.granularity", f"task '{config.task}' uses {granularity} features")
        return {}
    pooling = features.pooling if "pooling" in features.model_fields_set else None
    if pooling is None:
        pooling = "first" if granularity == "word" else "mean"
    _check_pooling(granularity, pooling, fail)
    return {"granularity": granularity, "pooling": pooling}


def _glue_columns(data) -> dict[str, str | None]:
    """A GLUE layout fills the columns the config does not name itself."""
    if not data.glue:
        return {}
    text, pair, label = c.GLUE_COLUMNS[data.glue]
    given = data.model_fields_set
    columns = {"text_column": text, "text_pair_column": pair, "label_column": label}
    return {name: value for name, value in columns.items() if name not in given}


def _reading(config: RunConfig, strategy: str, fail) -> dict[str, str]:
    """How a whole text or a pair meets the encoder: ``features.pair`` resolved (auto: separate for a frozen
    encoder, joint for fine-tuning; joint where there are no pairs), and the rules of separate pairs,
    windows over long texts and the cosine head."""
    f, enc, head, task = config.features, config.encoder, config.head.type, config.task
    whole = c.TASK_GRANULARITY[task] == "sentence"
    layout = c.GLUE_COLUMNS.get(config.data.glue or "", (None, None, None))[1]
    pairs = whole and bool(config.data.text_pair_column or layout) and enc.model not in c.BAG_OF_WORDS
    pair = f.pair
    if not pairs:
        if pair == "separate":
            raise fail("features.pair", f"'separate' reads the two texts of a pair apart; this {task} run has no pairs")
        pair = "joint"
    elif pair == "auto":
        pair = "separate" if strategy == "feature" else "joint"
    if enc.long_text == "windows":
        if not whole or enc.model in c.BAG_OF_WORDS:
            what = f"task '{task}' reads long inputs in windows of its own" if not whole else "it reads whole texts"
            raise fail("encoder.long_text", f"'windows' does not apply: {what}")
        if pairs and pair == "joint":
            raise fail(
                "encoder.long_text", "windows read each text alone: with text pairs, set features.pair: separate"
            )
        if enc.stride >= enc.max_length // 2:
            raise fail(
                "encoder.stride",
                f"windows must move on: give a stride under encoder.max_length / 2 ({enc.max_length // 2})",
            )
    grouped = pair == "separate" or enc.long_text == "windows"
    if grouped and head in c.TOKEN_HEADS:
        raise fail(
            "head.type", f"'{head}' reads the tokens of one sequence: use it with features.pair: joint and no windows"
        )
    if head in c.PAIR_HEADS and pair != "separate":
        raise fail(
            "head.type", f"'{head}' compares the two texts of a pair read apart: it needs features.pair: separate"
        )
    return {"pair": pair} if pair != f.pair else {}


def _metric(config: RunConfig, fail) -> str:
    metrics = c.TASK_METRICS[config.task]
    metric = config.train.metric
    if metric is None:
        return metrics[0]
    if metric not in metrics:
        raise fail("train.metric", f"task '{config.task}' reports {', '.join(metrics)}; not '{metric}'")
    return metric


def _check_head(config: RunConfig, fail) -> None:
    heads = c.TASK_HEADS[config.task]
    if config.head.type not in heads:
        raise fail("head.type", f"task '{config.task}' takes a {c.listed(heads)} head")
