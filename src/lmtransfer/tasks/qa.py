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
from typing import Any

import numpy as np
import torch.nn.functional as F
from torch import nn

from lmtransfer.core.choices import TASK_METRICS
from lmtransfer.core.errors import DataError
from lmtransfer.data.examples import Encoded
from lmtransfer.data.splits import Split, make_splits
from lmtransfer.data.squad import QAExample, read_squad
from lmtransfer.tasks.base import Prepared, Scored, Task
from lmtransfer.tasks.metrics import squad_metrics, squad_scores
from lmtransfer.tasks.qa_answers import answer_spans
from lmtransfer.tasks.qa_windows import make_windows
from lmtransfer.tasks.requests import Body, QARequest
from lmtransfer.tasks.units import squad_units

NO_SCORE = -1e4  # written at padding positions, so that the softmax over positions ignores them
Questions = Split[QAExample]  # a split of SQuAD questions; ``version`` is the file's own ("v2.0")


class QATask(Task):
    name = "qa"
    pipeline_tag = "question-answering"
    per_position = True
    metrics = TASK_METRICS[name]
    prediction_suffix = ".json"

    def read(self, path: Any, labelled: bool = True) -> Questions:
        examples, report = read_squad(path)
        version = str(report.get("version") or "")
        if any(e.is_impossible for e in examples) and not version.startswith("v2"):
            version = "v2.0"  # unanswerable questions are SQuAD 2.0's, whatever the file says
        return Split(examples, str(path), version=version or None)

    def texts(self, split: Questions) -> list[str]:
        return [text for example in split.items for text in (example.question, example.context)]

    def load(self) -> dict[str, Questions]:
        d = self.config.data
        if d.source != "files" or not d.dev:
            raise self.config.error("data.train", "qa reads SQuAD JSON files: give data.train and data.dev (and test)")
        train, dev = self.read(d.train), self.read(d.dev)
        return make_splits(train, dev, self.read(d.test) if d.test else None, d, hold_out_test=False)

    def parse(self, items: Sequence[Any]) -> Questions:
        """Dicts with "question" and "context" (and optionally "id")."""
        examples = []
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not {"question", "context"} <= set(item):
                raise DataError("each input needs a 'question' and a 'context'", path="input", line=i + 1)
            examples.append(QAExample(str(item.get("id", i)), str(item["question"]), str(item["context"]), []))
        return Split(examples, "input", labelled=False)

    def parse_argument(self, argument: str) -> Any:
        try:
            return json.loads(argument)
        except json.JSONDecodeError as exc:
            raise ValueError(f"qa inputs are JSON objects with question and context ({exc.msg})") from None

    def example_argument(self) -> str:
        return json.dumps({"question": "Who rose?", "context": "Shares of Acme rose in London."})

    def request_model(self) -> type[Body]:
        return QARequest

    def prediction_row(self, item: Any, found: Any) -> dict[str, Any]:
        return {**item, **found}

    def _null_threshold(self, questions: Questions) -> float | None:
        threshold = self.config.qa.null_threshold
        version_2 = (questions.version or "").startswith("v2")
        return threshold if threshold is not None else (0.0 if version_2 else None)

    def prepare(self, split: Questions, tokenizer: Any, labels: list[str]) -> Prepared:
        q = self.config.qa
        windows = make_windows(tokenizer, split.items, self.config.encoder.max_length, q.stride, q.max_query_length)
        types = windows.token_type_ids
        examples = [
            Encoded(tuple(ids.tolist()), None if types is None else tuple(types[w].tolist()))
            for w, ids in enumerate(windows.input_ids)
        ]
        targets = np.stack([windows.start_positions, windows.end_positions], axis=1)  # (W, 2)
        return Prepared(examples, targets, split, len(split), windows)

    def num_outputs(self, labels: list[str]) -> int:
        return 2  # a start and an end score per token

    def head_options(self, labels: list[str]) -> dict[str, Any]:
        return {"pad_score": NO_SCORE}

    def loss(self, model: nn.Module):
        def span_loss(outputs, targets):  # (B, T, 2) start / end scores, (B, 2) gold tokens
            start = F.cross_entropy(outputs[..., 0], targets[:, 0])
            return (start + F.cross_entropy(outputs[..., 1], targets[:, 1])) / 2

        return span_loss

    def _answers(self, prepared: Prepared, outputs: np.ndarray) -> dict[str, dict]:
        """Per question id: the answer, its character offsets in the context and its score."""
        q = self.config.qa
        return answer_spans(
            prepared.source.items,
            prepared.extra,
            list(outputs[..., 0]),
            list(outputs[..., 1]),
            q.max_answer_length,
            q.n_best,
            self._null_threshold(prepared.source),
        )

    def scored(self, prepared: Prepared, outputs: np.ndarray, model: nn.Module, labels: list[str]) -> Scored:
        questions = prepared.source.items
        answers = {key: span["answer"] for key, span in self._answers(prepared, outputs).items()}
        metrics = squad_metrics(answers, questions)
        return Scored({**metrics, "windows": len(prepared.examples)}, squad_units(*squad_scores(answers, questions)))

    def predictions(self, prepared: Prepared, outputs: np.ndarray, model: nn.Module, labels: list[str]) -> list:
        answers = self._answers(prepared, outputs)
        return [{"id": e.id, **answers[e.id]} for e in prepared.source.items]

    def prediction_file(self, prepared: Prepared, predictions: list) -> str:
        """The official format: one JSON object mapping question id to answer text."""
        return json.dumps({p["id"]: p["answer"] for p in predictions}, ensure_ascii=False, indent=1) + "\n"
