"""Task metrics: classification (accuracy, F1 per class), multi-label, regression, entity-level F1, and
SQuAD's exact match and F1 with the official answer normalisation."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

import numpy as np

from lmtransfer.data.squad import QAExample


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict[str, object]:
    """Metrics over class ids; ``labels[i]`` names class i. Per-class scores are keyed by label name."""
    # imported here: scikit-learn (with scipy) adds ~140 MB to a process that only extracts features
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    ids = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=ids, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=ids, average="macro", zero_division=0)),
        "examples": len(y_true),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(labels, precision, recall, f1, support)
        },
    }


def multilabel_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict[str, object]:
    """(N, C) 0/1 gold and predicted label sets: micro and macro F1, subset accuracy, per-label scores."""
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    y_true, y_pred = np.asarray(y_true) > 0.5, np.asarray(y_pred).astype(bool)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, zero_division=0)
    return {
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "subset_accuracy": float(np.mean(np.all(y_true == y_pred, axis=1))) if len(y_true) else 0.0,
        "examples": len(y_true),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(labels, precision, recall, f1, support)
        },
    }


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, object]:
    """Pearson and Spearman correlation, mean squared error (and its negative, for "higher is better")."""
    from scipy.stats import pearsonr, spearmanr

    y_true, y_pred = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    constant = len(y_true) < 2 or np.ptp(y_true) == 0 or np.ptp(y_pred) == 0  # correlation undefined
    mse = float(np.mean((y_true - y_pred) ** 2)) if len(y_true) else 0.0
    return {
        "pearson": 0.0 if constant else float(pearsonr(y_true, y_pred)[0]),
        "spearman": 0.0 if constant else float(spearmanr(y_true, y_pred)[0]),
        "mse": mse,
        "neg_mse": -mse,
        "examples": len(y_true),
    }


def entity_metrics(gold: list[list[str]], predicted: list[list[str]], scheme: str) -> dict[str, object]:
    """Entity-level precision / recall / F1 (seqeval, strict: an entity counts only with exact bounds and type),
    overall (micro) and per entity type. ``scheme`` is IOB2 or BIOES, the tags' scheme."""
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2, IOBES

    report = classification_report(
        gold, predicted, mode="strict", scheme=IOBES if scheme == "BIOES" else IOB2, output_dict=True, zero_division=0
    )
    total = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0})
    per_type = {
        kind: {
            "precision": float(v["precision"]),
            "recall": float(v["recall"]),
            "f1": float(v["f1-score"]),
            "support": int(v["support"]),
        }
        for kind, v in report.items()
        if not kind.endswith(" avg")
    }
    return {
        "precision": float(total["precision"]),
        "recall": float(total["recall"]),
        "f1": float(total["f1-score"]),
        "entities": int(total["support"]),
        "sentences": len(gold),
        "per_type": per_type,
    }


# ---------------------------------------------------------------------------------------------- SQuAD
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """The official SQuAD normalisation: lowercase, drop punctuation, drop a/an/the, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _as_list(truths: Sequence[str]) -> list[str]:
    return [truths] if isinstance(truths, str) else list(truths)


def exact_match(prediction: str, truths: Sequence[str]) -> float:
    """1.0 if the normalised prediction equals any normalised gold answer, else 0.0."""
    normalized = normalize_answer(prediction)
    return float(any(normalized == normalize_answer(truth) for truth in _as_list(truths)))


def _f1_one(prediction: str, truth: str) -> float:
    predicted, gold = normalize_answer(prediction).split(), normalize_answer(truth).split()
    if not predicted or not gold:  # SQuAD v2's rule; v1.1 gives 0 here even when both are empty
        return float(predicted == gold)
    same = sum((Counter(predicted) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def f1(prediction: str, truths: Sequence[str]) -> float:
    """Token-level F1 over normalised tokens (bag-of-tokens overlap), the maximum over the gold answers."""
    return max((_f1_one(prediction, truth) for truth in _as_list(truths)), default=0.0)


def squad_scores(predictions: dict[str, str], examples: list[QAExample]) -> tuple[list[float], list[float]]:
    """Exact match and F1 (0..1) of each question, in order.

    An impossible question's gold answer is "", so it scores 1 only when the prediction normalises to ""
    (as in the SQuAD v2 script). A missing prediction scores 0; predictions for other ids are ignored.
    """
    exact, overlap = [], []
    for example in examples:
        if example.id not in predictions:
            exact.append(0.0)
            overlap.append(0.0)
            continue
        truths = [""] if example.is_impossible else [answer.text for answer in example.answers]
        exact.append(exact_match(predictions[example.id], truths))
        overlap.append(f1(predictions[example.id], truths))
    return exact, overlap


def squad_metrics(predictions: dict[str, str], examples: list[QAExample]) -> dict[str, float | int]:
    """Exact match and F1 in percent over ``examples`` (see ``squad_scores``), and their count."""
    exact, overlap = squad_scores(predictions, examples)
    count = len(examples)
    scale = 100.0 / count if count else 0.0
    return {"exact_match": sum(exact) * scale, "f1": sum(overlap) * scale, "count": count}
