"""Extractive question answering (SQuAD v1.1 and v2): start / end scores per token, answers cut from the context.

Each question + context becomes one or more windows of at most ``encoder.max_length`` tokens
(consecutive windows share ``qa.stride`` context tokens). The head scores every token as the start
and as the end of the answer; the best allowed span over all of a question's windows is the answer
(``qa.max_answer_length``, ``qa.n_best``), and on v2 data "" when the no-answer score wins by more
than ``qa.null_threshold``. Metrics are the official exact match and F1.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch.nn.functional as F
from torch import nn

from lmtransfer.data import sample_indices
from lmtransfer.errors import DataError
from lmtransfer.heads import SequenceHead
from lmtransfer.inputs import Encoded
from lmtransfer.qa import QAExample, make_windows, predict_answers, read_squad, squad_metrics
from lmtransfer.tasks.base import Prepared, Task

QA_HEADS = ("linear", "bilstm")
NO_SCORE = -1e4  # written at padding positions, so that the softmax over positions ignores them


@dataclass
class Questions:
    examples: list[QAExample]
    origin: str
    version_2: bool = False

    def __len__(self) -> int:
        return len(self.examples)

    def subset(self, indices: np.ndarray | None) -> Questions:
        if indices is None:
            return self
        return Questions([self.examples[i] for i in indices], self.origin, self.version_2)


class QATask(Task):
    name = "qa"
    granularity = "token"
    metrics = ("f1", "exact_match")
    prediction_suffix = ".json"

    def read(self, path: Any, labelled: bool = True) -> Questions:
        examples, report = read_squad(path)
        v2 = any(e.is_impossible for e in examples) or str(report.get("version") or "").startswith("v2")
        return Questions(examples, str(path), v2)

    def texts(self, split: Questions) -> list[str]:
        return [text for example in split.examples for text in (example.question, example.context)]

    def load(self) -> dict[str, Questions]:
        d = self.config.data
        if d.source != "files" or not d.dev:
            raise self.config.error("data.train", "qa reads SQuAD JSON files: give data.train and data.dev (and test)")
        splits = {"train": self.read(d.train), "dev": self.read(d.dev)}
        if d.test:
            splits["test"] = self.read(d.test)
        limits = {"train": d.max_train_examples}
        return {
            n: s.subset(sample_indices(len(s), limits.get(n, d.max_eval_examples), d.split_seed))
            for n, s in splits.items()
        }

    def parse(self, items: Sequence[Any]) -> Questions:
        """Dicts with "question" and "context" (and optionally "id")."""
        examples = []
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not {"question", "context"} <= set(item):
                raise DataError("each input needs a 'question' and a 'context'", path="input", line=i + 1)
            examples.append(QAExample(str(item.get("id", i)), str(item["question"]), str(item["context"]), []))
        return Questions(examples, "input")

    def _null_threshold(self, questions: Questions) -> float | None:
        threshold = self.config.qa.null_threshold
        return threshold if threshold is not None else (0.0 if questions.version_2 else None)

    def prepare(self, split: Questions, tokenizer: Any, labels: list[str]) -> Prepared:
        q = self.config.qa
        windows = make_windows(tokenizer, split.examples, self.config.encoder.max_length, q.stride, q.max_query_length)
        types = windows.token_type_ids
        examples = [
            Encoded(tuple(ids.tolist()), None if types is None else tuple(types[w].tolist()))
            for w, ids in enumerate(windows.input_ids)
        ]
        targets = np.stack([windows.start_positions, windows.end_positions], axis=1)  # (W, 2)
        return Prepared(examples, targets, split, len(split), windows)

    def head(self, in_dim: int, labels: list[str]) -> nn.Module:
        h = self.config.head
        if h.type not in QA_HEADS:
            raise self.config.error("head.type", f"task 'qa' takes a {' or '.join(QA_HEADS)} head")
        lstm = h.lstm_hidden if h.type == "bilstm" else 0
        return SequenceHead(in_dim, 2, lstm, h.lstm_layers, h.dropout, pad_score=NO_SCORE)

    def loss(self, model: nn.Module):
        def span_loss(outputs, targets):  # (B, T, 2) start / end scores, (B, 2) gold tokens
            start = F.cross_entropy(outputs[..., 0], targets[:, 0])
            return (start + F.cross_entropy(outputs[..., 1], targets[:, 1])) / 2

        return span_loss

    def _answers(self, prepared: Prepared, outputs: np.ndarray) -> dict[str, str]:
        q = self.config.qa
        return predict_answers(
            prepared.source.examples,
            prepared.extra,
            list(outputs[..., 0]),
            list(outputs[..., 1]),
            q.max_answer_length,
            q.n_best,
            self._null_threshold(prepared.source),
        )

    def score(self, prepared: Prepared, outputs: np.ndarray, model: nn.Module, labels: list[str]) -> dict[str, Any]:
        metrics = squad_metrics(self._answers(prepared, outputs), prepared.source.examples)
        return {**metrics, "windows": len(prepared.examples)}

    def predictions(self, prepared: Prepared, outputs: np.ndarray, model: nn.Module, labels: list[str]) -> list:
        answers = self._answers(prepared, outputs)
        return [{"id": e.id, "answer": answers[e.id]} for e in prepared.source.examples]

    def prediction_file(self, prepared: Prepared, predictions: list) -> str:
        """The official format: one JSON object mapping question id to answer text."""
        return json.dumps({p["id"]: p["answer"] for p in predictions}, ensure_ascii=False, indent=1) + "\n"
