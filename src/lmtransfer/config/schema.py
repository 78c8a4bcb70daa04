"""The run config's schema: typed, frozen pydantic sections whose checks look at one section alone.

A config is built in two steps (``lmtransfer.config.loading``): these models check the config as written
(types, ranges, names), then ``lmtransfer.config.resolve`` works out every value that depends on other
fields (defaults per strategy and task, granularity, GLUE columns) and checks the rules between fields.
Every section is frozen: nothing changes a config once it is resolved, so the saved ``config.yaml`` is
exactly what ran. Every field has a default, so an empty file is a valid config that runs the embedded
demo (MiniLM features on BBC News).
"""

from __future__ import annotations

from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from lmtransfer.config.source import ConfigSource, located
from lmtransfer.core import choices as c
from lmtransfer.core.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    oov: Literal[c.OOV_POLICIES] = Field(  # type: ignore[valid-type]
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
    long_text: Literal[c.LONG_TEXT] = Field(  # type: ignore[valid-type]
        "truncate",
        description="whole-text tasks: a text longer than max_length is cut there (truncate), or read whole in "
        "overlapping windows of max_length tokens whose vectors are pooled (windows)",
    )
    stride: int = Field(32, ge=0, description="windows: tokens that consecutive windows of a text share")
    max_windows: int = Field(
        8, ge=1, description="windows: fine-tuning reads at most this many windows of a text (the first ones)"
    )


class FeatureConfig(_Section):
    layers: str | int | list[int] = Field("all", description="'all', 'last4', an index or a list; 0 = embeddings")
    combine: Literal[c.COMBINATIONS] = Field(  # type: ignore[valid-type]
        "mix", description="how the chosen layers meet the head: learned scalar mix, or concatenated side by side"
    )
    granularity: Literal[c.GRANULARITIES] = "sentence"  # type: ignore[valid-type]
    pooling: Literal[c.POOLINGS] = "mean"  # type: ignore[valid-type]
    dtype: Literal[c.STORAGE_DTYPES] = Field(  # type: ignore[valid-type]
        "float16", description="how cached features are stored; int8 = per-vector scaled, half of float16"
    )
    compute: Literal[c.COMPUTE_DTYPES] = Field(  # type: ignore[valid-type]
        "auto",
        description="encoder arithmetic of a frozen encoder: auto (bfloat16 autocast where the device has native "
        "bfloat16, a recent GPU or a CPU with AVX512-BF16 or AMX; float32 elsewhere), float32, bfloat16",
    )
    backend: Literal[c.FEATURE_BACKENDS] = Field(  # type: ignore[valid-type]
        "torch",
        description="what runs the frozen encoder: torch, onnx (ONNX Runtime on the CPU, the graph exported once "
        "per weights; pip install 'lmtransfer[onnx]'), or auto (onnx on a CPU computing in float32, else torch)",
    )
    quantize: Literal[c.ONNX_QUANTIZATIONS] = Field(  # type: ignore[valid-type]
        "none", description="the onnx backend's weights: none (float32) or int8 (dynamic quantisation, faster)"
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
    pair: Literal[c.PAIR_READINGS] = Field(  # type: ignore[valid-type]
        "auto",
        description="pair tasks: the two texts through the encoder together, [CLS] a [SEP] b [SEP] (joint), or "
        "each alone, the head reading [u; v; |u-v|; u*v] (separate); auto: separate feature-based, joint fine-tuned",
    )
    window_pooling: Literal[c.WINDOW_POOLING] = Field(  # type: ignore[valid-type]
        "mean",
        description="encoder.long_text windows: a text's window vectors pooled by mean, max or learned attention",
    )


class DataConfig(_Section):
    demo: Literal[c.DEMOS] | None = Field(  # type: ignore[valid-type]
        None, description="embedded demo data set; used when no files are given"
    )
    train: str | None = None
    dev: str | None = None
    test: str | None = None
    hf: str | None = Field(None, description="Hugging Face dataset name or a local datasets directory")
    hf_config: str | None = None
    format: Literal[c.TABLE_FORMATS] = "auto"  # type: ignore[valid-type]
    glue: Literal[tuple(c.GLUE_COLUMNS)] | None = Field(  # type: ignore[valid-type]
        None, description="a GLUE TSV layout (mrpc, rte, ...): sets the text, pair and label columns"
    )
    text_column: str = "text"
    text_pair_column: str | None = Field(None, description="second text of a sentence pair (e.g. sentence2)")
    label_column: str = "label"
    label_separator: str = Field(",", description="multilabel: separates the labels of one example")
    word_column: int = Field(0, description="tagging: CoNLL column of the words (0 = first, -1 = last)")
    tag_column: int = Field(-1, description="tagging: CoNLL column of the tags (-1 = last)")
    tag_scheme: Literal["auto", *c.TAG_SCHEMES] = Field(  # type: ignore[valid-type]
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
    type: Literal[c.HEAD_TYPES] = Field(  # type: ignore[valid-type]
        "linear",
        description="whole-text tasks: linear, mlp, bilstm (over the tokens, max-pooled); tagging: linear, bilstm, "
        "crf, bilstm-crf; qa: linear, bilstm",
    )
    hidden_size: int = Field(256, ge=1, description="MLP hidden width")
    lstm_hidden: int = Field(256, ge=1, description="BiLSTM hidden size per direction")
    lstm_layers: int = Field(1, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    layer_norm: bool = Field(False, description="normalise each layer before combining them")
    tag_scheme: Literal[c.LEARNED_TAG_SCHEMES] = Field(  # type: ignore[valid-type]
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


class TrainConfig(_Section):
    epochs: int | None = Field(
        None,
        ge=1,
        description="passes over train, raised where they hold fewer than min_steps optimizer steps; "
        "default 20 (feature) or 3 (finetune, lora)",
    )
    min_steps: int | None = Field(
        None,
        ge=0,
        description="the fewest optimizer steps a run takes, whatever the training set's size: epochs are raised to "
        "reach them and early stopping waits for them; default 300 (feature) or 150 (finetune, lora), measured "
        "in docs/benchmarks.md; 0: epochs alone",
    )
    eval_steps: int | None = Field(
        None,
        ge=1,
        description="optimizer steps between two dev evaluations (also before the first and after the last step); "
        "default twice an epoch, at least 10 steps apart and at most 20 evaluations in all",
    )
    batch_size: int = Field(64, ge=1, description="examples per optimizer step, across processes and accumulation")
    lr: float | None = Field(
        None, gt=0, description="AdamW lr; default 5e-3 feature, 5e-5 finetune (1e-3 on static vectors), 5e-4 lora"
    )
    head_lr: float | None = Field(None, gt=0, description="lr of scalar mix + head; default: lr")
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="share of steps with linear warmup, then linear decay")
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimizer step")
    gradient_checkpointing: bool = Field(
        False,
        description="fine-tuning, lora: keep only each block's input for the backward pass and recompute the "
        "rest (activation memory of one block instead of all, for about a third more compute)",
    )
    group_by_length: bool = Field(
        True, description="fine-tuning: batch texts of similar length together (less padding, faster steps)"
    )
    patience: int | None = Field(
        None,
        ge=1,
        description="dev evaluations without improvement before stopping (never before min_steps); default 3 "
        "(feature) or 5 (finetune, lora: dev dips while the learning rate is high); a run converged where its "
        "best evaluation is followed by this many",
    )
    metric: str | None = Field(
        None,
        description="dev metric for early stopping and the best checkpoint; default per task: accuracy "
        "(classification), micro_f1 (multilabel), pearson (regression), f1 (tagging, qa)",
    )
    max_grad_norm: float | None = Field(1.0, gt=0)
    mixed_precision: Literal[c.MIXED_PRECISION] = Field(  # type: ignore[valid-type]
        "auto",
        description="auto: bf16 autocast where the device has native bfloat16 (a recent GPU, or a CPU with "
        "AVX512-BF16 or AMX), else no",
    )
    checkpoint_every: int = Field(0, ge=0, description="also checkpoint every N optimizer steps (0: epoch ends only)")
    keep_checkpoints: int = Field(2, ge=1, description="periodic checkpoints kept (the best is kept apart)")
    seed: int = 13
    report_to: list[Literal[c.TRACKERS]] = Field(  # type: ignore[valid-type]
        default_factory=list,
        description="experiment trackers to log to, through accelerate: tensorboard (into <output_dir>/logs), "
        "mlflow (MLFLOW_TRACKING_URI), wandb, comet_ml, aim, clearml, dvclive; default none",
    )
    logging_steps: int = Field(10, ge=1, description="trackers get the training loss and lr every N optimizer steps")
    experiment: str | None = Field(
        None, description="the trackers' experiment (project); default: the run folder's name (compare: its folder's)"
    )
    tags: dict[str, str] = Field(default_factory=dict, description="tags of the run in the trackers")
    score_test: bool = Field(
        True, description="score the test split after training (false: dev alone, as compare's search trials are)"
    )

    @field_validator("mixed_precision", mode="before")
    @classmethod
    def _yaml_no(cls, value: Any) -> Any:
        return "no" if value is False else value  # YAML reads a bare `no` as false


class FinetuneConfig(_Section):
    freeze_embeddings: bool = False
    freeze_layers: int = Field(0, ge=0, description="freeze the bottom k transformer blocks")
    layer_lr_decay: float = Field(1.0, gt=0, le=1, description="block l gets lr * decay^(top - l)")
    attention_dropout: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="dropout on the attention probabilities while the encoder trains (default: the checkpoint's, "
        "0.1 for BERT-like models); 0 lets torch's CPU attention skip storing them, which halved a SQuAD "
        "fine-tune's peak memory",
    )


class LoraConfig(_Section):
    r: int = Field(8, ge=1, description="adapter rank")
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    target_modules: list[str] | None = Field(None, description="default: the attention projections of the model")


class RangeConfig(_Section):
    """A searched number between ``low`` and ``high`` (log-uniform with ``log``; whole numbers with ``integer``)."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> RangeConfig:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self


class SearchConfig(_Section):
    """A search over dotted keys of a variant, choosing by dev alone (Optuna's TPE sampler; a grid, tried
    whole, where every key lists its values and the grid fits in ``trials``)."""

    trials: int = Field(10, ge=1, description="trials per variant (and encoder and training-set size)")
    space: dict[str, list[Any] | RangeConfig] = Field(
        default_factory=dict,
        description="dotted key -> a list of values, or {low, high, log, integer}; e.g. train.lr: {low: 1e-3, high: "
        "3e-2, log: true}; empty: the way's default space, its learning rate and train.min_steps "
        "(config/variants.DEFAULT_SPACES)",
    )
    variants: list[str] | None = Field(
        None, description="compare.search only: the variants it searches; default every one but the baselines"
    )
    prune: bool = Field(
        False,
        description="stop a trial after a dev evaluation whose metric is worse than the median of the earlier "
        "trials' at that optimizer step (Optuna's median pruner); a pruned trial is never chosen. Pays for "
        "fine-tuning trials",
    )
    prune_startup: int = Field(2, ge=1, description="finished trials of the search before any trial is pruned")
    prune_warmup: int = Field(1, ge=0, description="dev evaluations every trial has before it can be pruned")

    @field_validator("space", mode="before")
    @classmethod
    def _values(cls, space: Any) -> Any:
        """Each key's values: a non-empty list, or a range (a mapping), each error naming its key."""
        if not isinstance(space, dict):
            return space
        out: dict[str, Any] = {}
        for key, values in space.items():
            if isinstance(values, list) and not values:
                raise ValueError(f"{key}: an empty list of values")
            if isinstance(values, dict):
                try:
                    values = RangeConfig(**values)
                except ValidationError as exc:
                    problem = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
                    raise ValueError(f"{key}: {problem}") from None
            elif not isinstance(values, list | RangeConfig):
                raise ValueError(f"{key}: a list of values or a range {{low, high, log, integer}}")
            out[key] = values
        return out


class VariantConfig(_Section):
    """One arm of a comparison: the base run with some fields changed (the dotted keys of ``--set``)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$", max_length=80, description="row label and folder name")
    set: dict[str, Any] = Field(default_factory=dict, description="dotted overrides of the base run, e.g. head.type")
    encoders: bool = Field(
        True, description="cross with compare.encoders; false (or a set encoder.model) runs it on its own encoder"
    )
    search: SearchConfig | None = Field(None, description="this variant's own search (instead of compare.search)")


class CompareConfig(_Section):
    """``lmtransfer compare``: every variant x encoder x seed of the base run is one row of results.jsonl."""

    encoders: list[str] | None = Field(None, min_length=1, description="encoder.model values; default: the base's")
    seeds: list[int] = Field(default_factory=lambda: [13], min_length=1, description="train.seed values")
    variants: list[VariantConfig] = Field(default_factory=list, description="default: the base run alone")
    output_dir: str = Field("runs/compare", description="results.jsonl, report.md, report.html and the runs")
    inference_examples: int = Field(
        500, ge=1, description="dev items whose live prediction (raw text in, labels out) is timed per row"
    )
    search: SearchConfig | None = Field(
        None, description="a search for every variant (but baselines) that has none of its own; see SearchConfig"
    )
    extensions: int = Field(
        2,
        ge=0,
        description="a row whose run did not converge (training.convergence's rule) runs again with twice the "
        "optimizer steps, at most this many times; a row still not converged then is under-trained, and the "
        "verdict leaves it out",
    )
    train_sizes: list[int | Literal["all"]] | None = Field(
        None,
        min_length=1,
        description="training-set sizes: every row runs at each, on nested seeded subsets of train (the same "
        "for every variant; dev and test stay whole); all: the whole training set",
    )

    # the base run as written (before defaults), and where it came from: what the variants are built from
    _base: dict[str, Any] | None = PrivateAttr(default=None)
    _source: ConfigSource | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _unique_names(self) -> CompareConfig:
        names = [v.name for v in self.variants]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"compare.variants: variant names must differ ({', '.join(twice)} twice)")
        sizes = self.train_sizes or []
        if any(s != "all" and s < 1 for s in sizes):
            raise ValueError("compare.train_sizes: sizes are numbers of training examples, at least 1, or all")
        if len(set(sizes)) < len(sizes):
            raise ValueError("compare.train_sizes: each size once")
        unknown = sorted(set(self.search.variants or []) - set(names)) if self.search else []
        if unknown:
            raise ValueError(f"compare.search.variants: no variant named {', '.join(unknown)}")
        return self


class RunConfig(_Section):
    task: Literal[c.TASKS] = Field(  # type: ignore[valid-type]
        "classification",
        description="classification, multilabel, regression (texts or pairs), tagging (CoNLL), qa (SQuAD)",
    )
    strategy: Literal[c.STRATEGIES] = "feature"  # type: ignore[valid-type]
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

    _source: ConfigSource | None = PrivateAttr(default=None)  # where its values came from, for errors

    def error(self, field: str, message: str) -> ConfigError:
        """A ConfigError for ``field`` (dotted), located in the file this config came from."""
        return located(self._source, field, message)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)
