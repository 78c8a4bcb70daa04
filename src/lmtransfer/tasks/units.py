"""What each evaluation unit contributed to a split's metrics, so that the metrics can be recomputed on any
resample of the units: the bootstrap of ``compare`` draws units with replacement, the same draws for every
variant.

A unit is what a metric's sum runs over and what is resampled as a whole: a text or pair (classification,
multi-label, regression), a sentence (entity F1: its entities stay together), a question (SQuAD: all its
windows stay together). ``Units.metrics(index)`` takes an index array of shape (B, m), each row one
resample (positions into the units), and returns every metric of the task as an array of B values, equal
to what ``Task.score`` reports when the row is ``arange(n)`` (a test checks this for every task).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

KINDS = ("classification", "multilabel", "regression", "entities", "squad")


@dataclass(frozen=True)
class Units:
    """Per-unit arrays of one split (first axis: the unit) and the kind of metric they make."""

    kind: str
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind of units {self.kind!r}; one of {', '.join(KINDS)}")
        sizes = {len(a) for a in self.arrays.values()}
        if len(sizes) > 1:
            raise ValueError(f"units of unequal length: { {k: len(a) for k, a in self.arrays.items()} }")

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    @property
    def width(self) -> int:
        """Numbers per unit, for sizing resample blocks."""
        return max(1, sum(int(np.prod(a.shape[1:])) for a in self.arrays.values()))

    def metrics(self, index: np.ndarray, only: str | None = None) -> dict[str, np.ndarray]:
        """Every metric of the task (or ``only`` that one, where the others cost more: Spearman's ranks)
        for each row of ``index`` (B, m): a dict of (B,) float arrays."""
        index = np.atleast_2d(np.asarray(index))
        if self.kind == "regression":
            return _regression(self, index, only)
        return _METRICS[self.kind](self, index)

    def full(self) -> dict[str, float]:
        """The metrics on the units as they are (no resampling)."""
        return {k: float(v[0]) for k, v in self.metrics(np.arange(len(self))[None, :]).items()}

    def to_bytes(self) -> bytes:
        """An .npz (no pickles) holding the arrays, the kind and the meta."""
        buffer = io.BytesIO()
        header = json.dumps({"kind": self.kind, "meta": self.meta})
        np.savez_compressed(buffer, __header__=np.array(header), **self.arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Units:
        with np.load(io.BytesIO(data)) as npz:  # numpy refuses pickled objects by default
            header = json.loads(str(npz["__header__"]))
            arrays = {k: npz[k] for k in npz.files if k != "__header__"}
        return cls(header["kind"], arrays, header["meta"])


# --------------------------------------------------------------------------------------- constructors
def classification_units(gold: np.ndarray, predicted: np.ndarray, classes: int) -> Units:
    return Units(
        "classification",
        {"gold": np.asarray(gold, dtype=np.int32), "predicted": np.asarray(predicted, dtype=np.int32)},
        {"classes": int(classes)},
    )


def multilabel_units(gold: np.ndarray, predicted: np.ndarray) -> Units:
    return Units("multilabel", {"gold": np.asarray(gold) > 0.5, "predicted": np.asarray(predicted).astype(bool)})


def regression_units(gold: np.ndarray, predicted: np.ndarray) -> Units:
    arrays = {"gold": np.asarray(gold, dtype=np.float64), "predicted": np.asarray(predicted, dtype=np.float64)}
    return Units("regression", arrays)


def entity_units(gold: list[list[str]], predicted: list[list[str]], scheme: str) -> Units:
    """Per sentence: entities found right (exact bounds and type, seqeval's strict mode), found, in the gold."""
    from seqeval.scheme import IOB2, IOBES, Entities

    kind = IOBES if scheme == "BIOES" else IOB2
    gold_entities, found_entities = Entities(gold, kind).entities, Entities(predicted, kind).entities
    right = [len(set(g) & set(p)) for g, p in zip(gold_entities, found_entities)]
    arrays = {
        "right": np.asarray(right, dtype=np.int64),
        "found": np.asarray([len(p) for p in found_entities], dtype=np.int64),
        "gold": np.asarray([len(g) for g in gold_entities], dtype=np.int64),
    }
    return Units("entities", arrays)


def squad_units(exact: list[float], f1: list[float]) -> Units:
    """Per question: exact match and token F1, each in 0..1 (a question without a prediction scores 0)."""
    return Units("squad", {"exact_match": np.asarray(exact, dtype=np.float64), "f1": np.asarray(f1, dtype=np.float64)})


# ------------------------------------------------------------------------------------------- metrics
def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (scikit-learn's and seqeval's ``zero_division=0``)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den != 0)


def _f1(right: np.ndarray, found: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """F1 from counts: 2 tp / (predicted + gold), which is 2PR / (P + R) wherever that is defined."""
    return _ratio(2 * right, found + gold)


def _classification(units: Units, index: np.ndarray) -> dict[str, np.ndarray]:
    gold, found = units.arrays["gold"][index], units.arrays["predicted"][index]  # (B, m)
    hit = gold == found
    classes = units.meta["classes"]
    per_class = []
    for k in range(classes):
        is_gold, is_found = gold == k, found == k
        right = np.sum(is_gold & is_found, axis=1)
        per_class.append(_f1(right, is_found.sum(axis=1), is_gold.sum(axis=1)))
    macro = np.mean(per_class, axis=0) if per_class else np.zeros(len(index))
    return {
        "accuracy": hit.mean(axis=1),
        "macro_f1": macro,
        "f1": per_class[1] if classes == 2 else macro,  # the positive class of a binary task, as Task.score
    }


def _multilabel(units: Units, index: np.ndarray) -> dict[str, np.ndarray]:
    gold, found = units.arrays["gold"][index], units.arrays["predicted"][index]  # (B, m, C)
    right = np.sum(gold & found, axis=1)  # (B, C)
    n_found, n_gold = found.sum(axis=1), gold.sum(axis=1)
    return {
        "micro_f1": _f1(right.sum(axis=1), n_found.sum(axis=1), n_gold.sum(axis=1)),
        "macro_f1": _f1(right, n_found, n_gold).mean(axis=1),
        "subset_accuracy": np.all(gold == found, axis=2).mean(axis=1),
    }


def _pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    spread = (np.ptp(x, axis=1) > 0) & (np.ptp(y, axis=1) > 0)  # a constant side: 0, as regression_metrics
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    den = np.sqrt(np.sum(x * x, axis=1) * np.sum(y * y, axis=1))
    return np.where(spread, _ratio(np.sum(x * y, axis=1), den), 0.0)


def _regression(units: Units, index: np.ndarray, only: str | None = None) -> dict[str, np.ndarray]:
    gold, found = units.arrays["gold"][index], units.arrays["predicted"][index]
    out: dict[str, np.ndarray] = {}
    if only in (None, "mse", "neg_mse"):
        out["mse"] = np.mean((gold - found) ** 2, axis=1)
        out["neg_mse"] = -out["mse"]
    if only in (None, "pearson"):
        out["pearson"] = _pearson(gold, found)
    if only in (None, "spearman"):  # Pearson of average ranks
        from scipy.stats import rankdata  # (scipy's import is slow: only where ranks are wanted)

        out["spearman"] = _pearson(rankdata(gold, axis=1), rankdata(found, axis=1))
    return out


def _entities(units: Units, index: np.ndarray) -> dict[str, np.ndarray]:
    right, found, gold = (units.arrays[k][index].sum(axis=1) for k in ("right", "found", "gold"))
    return {"precision": _ratio(right, found), "recall": _ratio(right, gold), "f1": _f1(right, found, gold)}


def _squad(units: Units, index: np.ndarray) -> dict[str, np.ndarray]:
    return {k: 100.0 * units.arrays[k][index].mean(axis=1) for k in ("exact_match", "f1")}


_METRICS: dict[str, Callable[[Units, np.ndarray], dict[str, np.ndarray]]] = {
    "classification": _classification,
    "multilabel": _multilabel,
    "entities": _entities,
    "squad": _squad,
}
