"""Prompting a causal LM as a way (``strategy: prompt``): nothing trains. The prompt (``tasks.prompts``: the
instruction with the label words, k demonstrations from train) is built once, each label scored by its
log-likelihood after each text (``features.label_scores``, the prefix's keys and values computed once), and
the run folder holds what prediction needs besides the model: the prompt, its demonstrations (or, with
``prompt.demos: similar``, the training texts they are drawn from) and the model's identity (its name and a
hash of its weights, checked when the run is loaded back), never the weights themselves.

Its outputs are each label's log-probability renormalised over the labels (calibrated where asked): the
task scores them, predicts from them and gives their softmax as probabilities, as for any run.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from lmtransfer.config.schema import RunConfig
from lmtransfer.core.atomic import existing_dir
from lmtransfer.core.devices import peak_memory, pick_device
from lmtransfer.core.errors import ModelError
from lmtransfer.core.progress import Progress
from lmtransfer.encoders.causal_lm import CausalLM, load_causal_lm
from lmtransfer.encoders.encoder import Encoder
from lmtransfer.encoders.loading import load_encoder
from lmtransfer.features.embeddings import sentence_embeddings
from lmtransfer.features.label_scores import label_scores
from lmtransfer.runs.base import LoadedRun
from lmtransfer.runs.directory import read_json, run_config, save_run
from lmtransfer.runs.results import Costs, PromptCosts, TrainResult, score_splits
from lmtransfer.runs.way import TrainOptions
from lmtransfer.tasks.base import Prepared
from lmtransfer.tasks.prompts import (
    ClassificationPrompt,
    Item,
    calibrated,
    choose_demos,
    content_free,
    cut,
    label_words,
    nearest_demos,
    tokenised,
)
from lmtransfer.tasks.table import TaskData

PROMPT_FILE = "prompt.json"


@dataclass
class PromptRun(LoadedRun):
    """A prompt run: its config and labels, the label words, the demonstrations of every prompt (or the
    training items the nearest are drawn from), and the identity of the model it prompts."""

    directory: Path
    config: RunConfig
    labels: list[str]
    metrics: dict[str, Any]
    words: tuple[str, ...]
    demos: tuple[tuple[Item, str], ...]  # (item, label word): the same for every text
    pool: tuple[tuple[Item, str], ...] = ()  # demos: similar: every training item with its label word
    model_info: dict[str, Any] = field(default_factory=dict)  # name, source, GGUF file, weights hash, chat
    tokens_per_item: float | None = None  # of the last outputs computed

    @staticmethod
    def holds(directory: str | Path) -> bool:
        return (existing_dir(Path(directory)) / PROMPT_FILE).is_file()

    @classmethod
    def load(cls, directory: str | Path) -> PromptRun:
        directory = existing_dir(Path(directory))
        saved = read_json(directory, PROMPT_FILE)
        metrics = read_json(directory, "metrics.json") if (directory / "metrics.json").is_file() else {}
        pairs = lambda rows: tuple((_item(item), word) for item, word in rows)  # noqa: E731
        words = tuple(saved["words"])
        config, labels = run_config(directory), read_json(directory, "labels.json")
        return cls(
            directory, config, labels, metrics, words, pairs(saved["demos"]), pairs(saved["pool"]), saved["model"]
        )

    def save(self, folder: Path) -> None:
        saved = {"model": self.model_info, "words": list(self.words), "demos": self.demos, "pool": self.pool}
        (folder / PROMPT_FILE).write_text(json.dumps(saved, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

    @cached_property
    def lm(self) -> CausalLM:
        """The causal LM, loaded on first use and checked to be the one the run was made with."""
        enc = self.config.encoder
        lm = load_causal_lm(enc.model, revision=enc.revision, trust_remote_code=enc.trust_remote_code)
        lm.model.to(pick_device(self.config.features.device))
        found = weights_hash(lm)
        wanted = self.model_info.get("weights_sha256")
        if wanted is not None and found != wanted:
            raise ModelError(
                f"'{enc.model}' is not the model this run was made with (its weights differ): load that model, "
                "or prompt this one with a new run",
                path=self.directory,
                field="model",
            )
        self.model_info = self.model_info or identity(lm, self.config)
        return lm

    @cached_property
    def demo_encoder(self) -> Encoder:
        return load_encoder(self.config.prompt.demo_encoder).freeze()

    @cached_property
    def pool_vectors(self) -> np.ndarray:
        """(T, H) the training items' embeddings, for demos: similar."""
        items = [item for item, _ in self.pool]
        return sentence_embeddings(self.demo_encoder, items, self.config.encoder.max_length)

    def ready(self) -> None:
        self.lm  # noqa: B018 (loaded now, so that what follows times prediction alone)

    @property
    def tokenizer(self) -> Any:
        return self.lm.tokenizer

    def outputs(
        self, prepared: Prepared, *, batch_size: int | None = None, progress: bool = False, from_cache: bool = False
    ) -> np.ndarray:
        """(N, K) each label's log-probability after each item, renormalised over the labels."""
        p = self.config.prompt
        items = [self.cut(_item(example)) for example in prepared.examples]
        bar = Progress(total=len(items), desc="prompting", unit="text", disable=not progress, leave=False)
        with bar:
            if p.demos == "similar" and p.shots:
                scores = self._nearest(items, bar.update)
            else:
                scores = self._scored(self.demos, items, batch_size or p.batch_size, bar.update)
        return scores - np.logaddexp.reduce(scores, axis=1, keepdims=True)

    def cut(self, item: Item) -> Item:
        """An item's texts each cut at encoder.max_length tokens."""
        limit, tokenizer = self.config.encoder.max_length, self.lm.tokenizer
        return cut(tokenizer, item, limit) if isinstance(item, str) else tuple(cut(tokenizer, t, limit) for t in item)

    def _scored(self, demos, items: list[Item], batch_size: int, advance) -> np.ndarray:
        """Every item's label scores under one prompt (its content-free input's taken out, calibrating)."""
        p = self.config.prompt
        prompt = ClassificationPrompt(self.words, tuple(demos), p.instruction)
        extra = [content_free(items[0])] if p.calibrate and items else []
        tokens = tokenised(self.lm.tokenizer, prompt, [*items, *extra], chat=self.model_info["chat"])
        self._check_length(tokens)
        self.tokens_per_item = tokens.tokens_per_item
        found = label_scores(
            self.lm.model, tokens.prefix, tokens.items, tokens.labels, batch_size=batch_size,
            normalise=p.score == "mean", advance=advance,
        )  # fmt: skip
        return calibrated(found[: len(items)], found[-1]) if extra else found

    def _nearest(self, items: list[Item], advance) -> np.ndarray:
        """Each item under a prompt of its own: its ``prompt.shots`` nearest training items as demonstrations."""
        vectors = sentence_embeddings(self.demo_encoder, items, self.config.encoder.max_length)  # (N, H)
        where: dict[Item, list[int]] = {}
        for j, (item, _) in enumerate(self.pool):
            where.setdefault(item, []).append(j)
        same = np.zeros((len(items), len(self.pool)), dtype=bool)  # (N, T): the training copies of each item
        for i, item in enumerate(items):
            same[i, where.get(item, [])] = True
        chosen = nearest_demos(vectors @ self.pool_vectors.T, same, self.config.prompt.shots)  # (N, k)
        scores, tokens = np.zeros((len(items), len(self.words))), []
        for i, item in enumerate(items):
            scores[i] = self._scored([self.pool[j] for j in chosen[i]], [item], 1, advance)[0]
            tokens.append(self.tokens_per_item)
        self.tokens_per_item = float(np.mean(tokens)) if tokens else None
        return scores

    def _check_length(self, tokens) -> None:
        longest = len(tokens.prefix) + max(map(len, tokens.items), default=0) + max(map(len, tokens.labels))
        limit = getattr(self.lm.model.config, "max_position_embeddings", None)
        if limit is not None and longest > limit:
            raise self.config.error(
                "prompt.shots",
                f"the prompt reaches {longest:,} tokens, past the {limit:,} the model reads: fewer shots, or a "
                "smaller encoder.max_length (each text is cut there)",
            )


def _item(example: Any) -> Item:
    """A prepared example (a text, a ``TextPair``, a pair read back from JSON) as a prompt's item."""
    return example if isinstance(example, str) else (str(example[0]), str(example[1]))


def weights_hash(lm: CausalLM) -> str:
    """The hash lmtransfer keys an encoder's features by, over the causal LM's weights as loaded."""
    return Encoder(lm.name, lm.source, lm.model, lm.tokenizer).weights_hash()


def identity(lm: CausalLM, config: RunConfig) -> dict[str, Any]:
    """What a prompt run records of its model: where it came from, its weights' hash, and whether the
    prompt is written in its chat template."""
    choice = config.prompt.chat_template
    if choice is True and not lm.has_chat_template:
        raise config.error("prompt.chat_template", f"'{lm.name}' has no chat template: set it to auto or false")
    chat = lm.has_chat_template if choice == "auto" else choice
    config_ = lm.model.config
    return {
        "name": lm.name, "source": lm.source, "gguf_file": lm.gguf_file, "weights_sha256": weights_hash(lm),
        "chat": chat, "num_layers": config_.num_hidden_layers, "hidden_size": config_.hidden_size,
        "parameters": sum(p.numel() for p in lm.model.parameters()), "layers": [],
    }  # fmt: skip


@dataclass(frozen=True)
class PromptWay:
    """A causal LM prompted with the task's label words and k demonstrations (``strategy: prompt``)."""

    name: str = "prompt"
    kind: str = "prompting"
    tag: str = "prompted"
    baseline: bool = False
    trains_encoder: bool = False
    color: str = "#59a14f"

    def train(self, data: TaskData, *, options: TrainOptions) -> TrainResult:
        """Nothing trains: build the prompt, label dev and test, write the run. There are no steps to resume
        or prune; ``options.progress`` shows the labelling."""
        return prompt_run(data, self, options.progress)


PROMPT_WAY = PromptWay()


def prompt_run(data: TaskData, way: PromptWay, progress: bool = True) -> TrainResult:
    """Choose the demonstrations from train, label dev and test with the prompt, write the run directory."""
    config, task, labels = data.config, data.task, data.labels
    began = time.perf_counter()
    prepared = {name: task.prepare(split, None, labels) for name, split in data.splits.items()}
    words = label_words(config, labels)
    train = prepared["train"]
    train_items = [_item(example) for example in train.examples]
    train_labels = [labels[int(t)] for t in train.targets]
    lm = _load(config)
    run = PromptRun(Path(config.output_dir), config, labels, {}, words, (), model_info=identity(lm, config))
    run.__dict__["lm"] = lm  # loaded here, so that its errors name the config's fields
    load_seconds = time.perf_counter() - began
    word_of = dict(zip(labels, words, strict=True))
    shots = config.prompt.shots
    if shots > len(train_items):
        raise config.error("prompt.shots", f"{shots} demonstrations, but train holds {len(train_items)} examples")
    if config.prompt.demos == "similar" and shots:
        run.pool = tuple((run.cut(item), word_of[label]) for item, label in zip(train_items, train_labels, strict=True))
    else:
        chosen = choose_demos(train_items, train_labels, labels, shots, config.train.seed)
        run.demos = tuple((run.cut(train_items[i]), word_of[train_labels[i]]) for i in chosen)
    tokens: list[float] = []

    def outputs(split: Prepared) -> np.ndarray:
        found = run.outputs(split, progress=progress)
        tokens.append(run.tokens_per_item or 0.0)
        return found

    scored = score_splits(task, prepared, labels, outputs)
    seconds = scored.seconds
    labelled = sum(prepared[name].size for name in seconds)
    prompting = PromptCosts(
        shots=config.prompt.shots,
        tokens_per_example=float(np.mean(tokens)) if tokens else 0.0,
        label_seconds=seconds,
        examples_per_second=labelled / sum(seconds.values()) if sum(seconds.values()) else None,
        load_seconds=load_seconds,
    )
    costs = Costs(
        strategy=way.name, trainable_parameters=0, train_seconds=0.0, eval_seconds=sum(seconds.values()),
        wall_seconds=time.perf_counter() - began, train_examples=shots, prompting=prompting,
        **peak_memory(),
    )  # fmt: skip
    chat = "in its chat template" if run.model_info["chat"] else "as plain text"
    description = f"{config.prompt.shots}-shot prompt of {lm.name} {chat}; label words {', '.join(words)}"
    result = TrainResult.of(config, run, scored.metrics, prepared, costs, description, units=scored.units)
    save_run(config.output_dir, config, None, labels, run.model_info, result.metrics, run.save, scored.files, way=way)
    return result


def _load(config: RunConfig) -> CausalLM:
    enc = config.encoder
    try:
        lm = load_causal_lm(enc.model, revision=enc.revision, trust_remote_code=enc.trust_remote_code)
    except ModelError as exc:  # named at the config's line
        raise config.error("encoder.model", exc.message) from None
    except (ValueError, KeyError) as exc:  # transformers: a config with no causal LM class
        raise config.error("encoder.model", f"'{enc.model}' is not a causal language model ({exc})") from None
    lm.model.to(pick_device(config.features.device))
    return lm
