"""Sequence labelling (NER): CoNLL column files in, one tag per word out, entity-level F1 with seqeval.

Words are fed to the encoder pre-split; each word's vector pools its subwords (first, last or mean;
``features.pooling``). A word the tokenizer turns into nothing (a control or zero-width character)
is fed as the unknown token, so every word keeps a vector and a tag. A sentence longer than the
encoder's limit is cut into overlapping windows of whole words; each word is predicted from the
window in which it sits farthest from an edge, so no word is ever dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from lmtransfer.core.choices import TASK_METRICS
from lmtransfer.core.errors import DataError, shown
from lmtransfer.data.conll import Sentence, conll_text, read_conll
from lmtransfer.data.splits import Split, make_splits
from lmtransfer.data.tag_schemes import SCHEMES, allowed_transitions, convert, detect_scheme
from lmtransfer.tasks.base import Prepared, Scored, Task
from lmtransfer.tasks.metrics import entity_metrics
from lmtransfer.tasks.requests import Body, WordsRequest
from lmtransfer.tasks.units import entity_units

Tagged = Split[Sentence]  # a split of CoNLL sentences; ``labelled`` is False for raw input


@dataclass
class Window:
    sentence: int
    start: int  # first word
    stop: int  # one past the last word
    own_start: int  # the words this window predicts
    own_stop: int


def word_windows(counts: Sequence[int], budget: int) -> list[tuple[int, int]]:
    """Word ranges whose subword counts fit ``budget``; consecutive ranges overlap by about half.

    A single word longer than the budget gets a window of its own (the tokenizer then keeps its
    first pieces, which is all its vector needs).
    """
    n = len(counts)
    if sum(counts) <= budget:
        return [(0, n)]
    ranges, start = [], 0
    while True:
        stop, used = start, 0
        while stop < n and used + counts[stop] <= budget:
            used += counts[stop]
            stop += 1
        stop = max(stop, start + 1)
        ranges.append((start, stop))
        if stop >= n:
            return ranges
        start = max(start + 1, (start + stop) // 2)


def owned(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """For each range, the words it predicts: each word goes to the range where it is farthest from an edge."""
    n = ranges[-1][1]
    best = np.full(n, -1)
    margin = np.full(n, -1)
    for r, (start, stop) in enumerate(ranges):
        for i in range(start, stop):
            m = min(i - start, stop - 1 - i)
            if m > margin[i]:
                margin[i], best[i] = m, r
    out = []
    for r, (start, _) in enumerate(ranges):
        mine = np.flatnonzero(best == r)  # consecutive words; none when neighbours cover the window better
        out.append((int(mine[0]), int(mine[-1]) + 1) if mine.size else (start, start))
    return out


class TaggingTask(Task):
    name = "tagging"
    pipeline_tag = "token-classification"
    per_position = True
    metrics = TASK_METRICS[name]
    prediction_suffix = ".conll"

    # reading ----------------------------------------------------------------------------------------
    def read(self, path: Any, labelled: bool = True) -> Tagged:
        d = self.config.data
        tags = d.tag_column if labelled else None
        return Split(read_conll(path, tag_column=tags, word_column=d.word_column), str(path), labelled=labelled)

    def load(self) -> dict[str, Tagged]:
        d = self.config.data
        if d.source != "files":
            raise self.config.error("data.train", "tagging reads CoNLL column files: give data.train (and dev, test)")
        train = self.read(d.train)  # (files are read in this order, so that the first bad one is named)
        dev = self.read(d.dev) if d.dev else None
        return make_splits(train, dev, self.read(d.test) if d.test else None, d)

    def data_facts(self, splits: dict[str, Tagged]) -> dict[str, Any]:
        """The files' tag scheme, where ``data.tag_scheme`` is auto: the one their tags are written in."""
        if self.config.data.tag_scheme != "auto":
            return {}
        return {"data.tag_scheme": detect_scheme(s.tags for split in splits.values() for s in split.items)}

    def parse(self, items: Sequence[Any]) -> Tagged:
        """Texts (split on whitespace) or lists of words."""
        sentences = []
        for item in items:
            words = item.split() if isinstance(item, str) else [str(w) for w in item]
            if not words:
                raise DataError("an input to tag has no words", path="input")
            sentences.append(Sentence(words, ["O"] * len(words), words, list(range(1, len(words) + 1))))
        return Split(sentences, "input", labelled=False)

    def parse_argument(self, argument: str) -> str:
        return argument  # words separated by spaces

    def example_argument(self) -> str:
        return "Shares of Acme rose in London"

    def request_model(self) -> type[Body]:
        return WordsRequest

    def prediction_row(self, item: Any, found: Any) -> dict[str, Any]:
        return {"words": item.split() if isinstance(item, str) else list(item), "tags": found}

    def _scheme(self) -> tuple[str, str]:
        """(the files' scheme, the scheme the head learns)."""
        source = self.config.data.tag_scheme
        return ("IOB2" if source == "auto" else source), self.config.head.tag_scheme

    def _tags(self, sentence: Sentence) -> list[str]:
        source, target = self._scheme()
        return convert(sentence.tags, source, target)

    def texts(self, split: Tagged) -> list[str]:
        return [word for sentence in split.items for word in sentence.words]

    def fit_labels(self, train: Tagged) -> list[str]:
        """O, then every tag of the learned scheme for each entity type in train (types sorted)."""
        kinds = sorted({tag.partition("-")[2] for s in train.items for tag in s.tags if tag != "O"})
        prefixes = SCHEMES[self.config.head.tag_scheme]
        return ["O", *(f"{p}-{kind}" for kind in kinds for p in prefixes)]

    def check(self, split: Tagged, labels: list[str]) -> None:
        known = {label.partition("-")[2] for label in labels}
        for sentence in split.items:
            for tag, line in zip(sentence.tags, sentence.line_numbers):
                kind = tag.partition("-")[2]
                if tag != "O" and kind not in known:
                    raise DataError(
                        f"entity type '{shown(kind)}' never appears in the training data", path=split.origin, line=line
                    )

    # model ------------------------------------------------------------------------------------------
    def prepare(self, split: Tagged, tokenizer: Any, labels: list[str]) -> Prepared:
        pieces = _piece_counts(tokenizer, {w for s in split.items for w in s.words})
        unknown = tokenizer.unk_token or tokenizer.pad_token
        budget = self.config.encoder.max_length - tokenizer.num_special_tokens_to_add(pair=False)
        lookup = {label: i for i, label in enumerate(labels)}
        examples, targets, windows = [], [], []
        for index, sentence in enumerate(split.items):
            words = [w if pieces[w] else unknown for w in sentence.words]
            ids = [lookup[t] for t in self._tags(sentence)] if split.labelled else None
            ranges = word_windows([max(pieces[w], 1) for w in sentence.words], budget)
            for (start, stop), (own_start, own_stop) in zip(ranges, owned(ranges)):
                examples.append(words[start:stop])
                windows.append(Window(index, start, stop, own_start, own_stop))
                if ids is not None:
                    targets.append(np.array(ids[start:stop], dtype=np.int64))
        return Prepared(examples, targets if split.labelled else None, split, len(split), windows)

    def head_options(self, labels: list[str]) -> dict[str, Any]:
        return {"allowed": allowed_transitions(labels, self.config.head.tag_scheme)}

    def loss(self, model: nn.Module):
        return model.head.loss

    # outputs ----------------------------------------------------------------------------------------
    def _decoded(self, prepared: Prepared, outputs: np.ndarray, model: nn.Module, labels: list[str]) -> list[list[str]]:
        """Tags (learned scheme) per sentence, each word from the window that owns it."""
        lengths = torch.tensor([w.stop - w.start for w in prepared.extra])  # (N,)
        scores = torch.from_numpy(outputs)  # (N, W, K)
        mask = torch.arange(scores.shape[1])[None, :] < lengths[:, None]  # (N, W)
        paths = []
        for first in range(0, len(scores), 512):  # Viterbi a block at a time keeps memory flat
            paths += model.head.decode(scores[first : first + 512], mask[first : first + 512])
        tags = [[""] * len(s) for s in prepared.source.items]
        for window, path in zip(prepared.extra, paths):
            for i in range(window.own_start, window.own_stop):
                tags[window.sentence][i] = labels[path[i - window.start]]
        return tags

    def scored(self, prepared: Prepared, outputs: np.ndarray, model: nn.Module, labels: list[str]) -> Scored:
        predicted = self._decoded(prepared, outputs, model, labels)
        gold = [self._tags(s) for s in prepared.source.items]
        scheme = self.config.head.tag_scheme
        return Scored(entity_metrics(gold, predicted, scheme), entity_units(gold, predicted, scheme))

    def predictions(self, prepared: Prepared, outputs: np.ndarray, model: nn.Module, labels: list[str]) -> list:
        """Tags per sentence in the files' own scheme."""
        source, target = self._scheme()
        return [convert(tags, target, source) for tags in self._decoded(prepared, outputs, model, labels)]

    def prediction_file(self, prepared: Prepared, predictions: list) -> str:
        return conll_text(prepared.source.items, predictions)


def _piece_counts(tokenizer: Any, words: set[str]) -> dict[str, int]:
    """Subword tokens of each distinct word, tokenised alone (as ``is_split_into_words`` does)."""
    unique = sorted(words)
    if not unique:
        return {}
    ids = tokenizer(unique, add_special_tokens=False, verbose=False)["input_ids"]
    return {word: len(pieces) for word, pieces in zip(unique, ids)}
