"""The run config's schema: typed, frozen pydantic sections whose checks look at one section alone.

A config is built in two steps (``lmtransfer.config.loading``): these models check the config as written
(types, ranges, names), then ``lmtransfer.config.resolve`` works out every value that depends on other
fields (defaults per strategy and task, granularity, GLUE columns) and checks the rules between fields.
Every section is frozen: nothing changes a config once it is resolved, so the saved ``config.yaml`` is
exactly what ran. Every field has a default, so an empty file is a valid config that runs the embedded
demo (MiniLM features on BBC News).
"""

from __future__ import annotations

from typing import Literal

import yaml
from pydantic import Field, PrivateAttr, model_validator

from lmtransfer.config.compare_schema import CompareConfig
from lmtransfer.config.prompt_schema import PromptConfig
from lmtransfer.config.section import Section, registered
from lmtransfer.config.source import ConfigSource, located
from lmtransfer.config.train_schema import FinetuneConfig, LoraConfig, TrainConfig
from lmtransfer.core import choices as c
from lmtransfer.core.backends import names as backend_names
from lmtransfer.core.errors import ConfigError


class EncoderConfig(Section):
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


class FeatureConfig(Section):
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
    backend: registered(backend_names) = Field(  # type: ignore[valid-type]
        "torch",
        description="what runs the frozen encoder: torch, onnx (ONNX Runtime on the CPU, the graph exported once "
        "per weights; pip install onnxruntime onnx), or auto (onnx on a CPU computing in float32, else torch)",
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


class DataConfig(Section):
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


class HeadConfig(Section):
    type: registered(c.head_types) = Field(  # type: ignore[valid-type]
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


class QAConfig(Section):
    stride: int = Field(128, ge=0, description="context tokens shared by consecutive windows of a long context")
    max_query_length: int = Field(64, ge=1, description="questions are cut after this many tokens")
    max_answer_length: int = Field(30, ge=1, description="longest answer span, in tokens")
    n_best: int = Field(20, ge=1, description="spans considered per window")
    null_threshold: float | None = Field(
        None, description="SQuAD v2: answer '' when the null score beats the best span by more (default 0.0 on v2 data)"
    )


class RunConfig(Section):
    task: registered(lambda: c.TASK_GRANULARITY) = Field(  # type: ignore[valid-type]
        "classification",
        description="classification, multilabel, regression (texts or pairs), tagging (CoNLL), qa (SQuAD)",
    )
    strategy: registered(c.strategies) = Field(  # type: ignore[valid-type]
        "feature",
        description="feature (frozen encoder, cached features), finetune, lora, prompt (a causal LM with an "
        "instruction and k demonstrations, no training), zero-shot (the nearest label description, no training)",
    )
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    head: HeadConfig = Field(default_factory=HeadConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    qa: QAConfig = Field(default_factory=QAConfig)
    prompt: PromptConfig = Field(default_factory=PromptConfig)
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
