"""Bag-of-words features and their linear model: word (n-gram) counts or TF-IDF into scikit-learn.

``encoder.model: counts`` or ``tfidf`` makes a run the classic baseline a pretrained encoder has to
beat (``lmtransfer.runs.bow_run`` trains and loads such runs). The vocabulary (and TF-IDF's inverse
document frequencies) is fitted on the training split only; the model is logistic regression for
classification (one per label for multilabel) and ridge regression for regression, both with
scikit-learn's default L2 strength (C = 1, alpha = 1).

Saved as ``bag_of_words.json`` (settings and vocabulary) and ``bag_of_words.safetensors`` (idf, weight,
bias), so that loading it runs no pickle. Its outputs are logits in the shape the task scores. A sentence
pair is one bag of both texts' words.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors.numpy import load_file, save_file

from lmtransfer.data.examples import TextPair

if TYPE_CHECKING:
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import CountVectorizer

# scikit-learn is imported where it is used: this module is reachable from every run (runs.kinds), and
# importing scikit-learn (pandas with it) up front added about 100 MiB of RSS and 2-3 s to
# `import lmtransfer.api` on a 2-core AVX2 machine, which an encoder run needs only where it holds out
# a split (data.splits) or scores with it (tasks.metrics).

SETTINGS_FILE, WEIGHTS_FILE = "bag_of_words.json", "bag_of_words.safetensors"
CONSTANT_LOGIT = 20.0  # a multilabel label that is always (never) on in train: its logit, sign aside


@dataclass
class BagOfWords:
    """Fitted features and linear model: ``outputs(texts)`` are (N, K) logits (or scores for regression)."""

    kind: str  # counts | tfidf
    vocabulary: list[str]
    ngrams: int
    idf: np.ndarray | None  # (V,), tfidf only
    weight: np.ndarray  # (K, V)
    bias: np.ndarray  # (K,)

    def features(self, texts: list[str]) -> sp.csr_matrix:
        counts = _vectorizer(self.ngrams, vocabulary=self.vocabulary).transform(texts)  # (N, V) sparse
        return tfidf_rows(counts, self.idf) if self.idf is not None else counts

    def outputs(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.features(texts) @ self.weight.T) + self.bias  # (N, K)

    def save(self, folder: Path) -> None:
        settings = {"kind": self.kind, "ngrams": self.ngrams, "vocabulary": self.vocabulary}
        (folder / SETTINGS_FILE).write_text(json.dumps(settings) + "\n", encoding="utf-8")
        arrays = {"weight": self.weight, "bias": self.bias}
        if self.idf is not None:
            arrays["idf"] = self.idf
        save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}, folder / WEIGHTS_FILE)

    @classmethod
    def load(cls, folder: Path) -> BagOfWords:
        settings = json.loads((folder / SETTINGS_FILE).read_text(encoding="utf-8"))
        arrays = load_file(folder / WEIGHTS_FILE)
        idf, weight, bias = arrays.get("idf"), arrays["weight"], arrays["bias"]
        return cls(settings["kind"], settings["vocabulary"], settings["ngrams"], idf, weight, bias)


def _vectorizer(ngrams: int, min_count: int = 1, vocabulary: list[str] | None = None) -> CountVectorizer:
    from sklearn.feature_extraction.text import CountVectorizer

    # scikit-learn's word pattern (two or more word characters) and lowercasing, the usual baseline
    return CountVectorizer(lowercase=True, ngram_range=(1, ngrams), min_df=min_count, vocabulary=vocabulary)


def tfidf_rows(counts: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
    """Counts times idf, each row scaled to unit length: what TfidfVectorizer's defaults compute."""
    from sklearn.preprocessing import normalize

    return normalize(counts.multiply(idf[None, :]).tocsr())


def texts_of(examples: Sequence[Any]) -> list[str]:
    return [f"{e.first} {e.second}" if isinstance(e, TextPair) else e for e in examples]


def logistic(x: sp.csr_matrix, targets: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(K, V) weight and (K,) bias of logistic regression over K labels (``targets`` their indices); for two
    labels its one logit becomes two whose softmax is its sigmoid."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1.0, max_iter=2000, random_state=seed).fit(x, targets)
    weight, bias = model.coef_, model.intercept_  # (K, V) or (1, V) for two classes
    if weight.shape[0] == 1:  # the labels are train's own, so model.classes_ is every label, in order
        weight, bias = np.concatenate([-weight, weight]) / 2, np.concatenate([-bias, bias]) / 2
    return weight, bias


def per_label(x: sp.csr_matrix, targets: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A logistic regression per column of the (N, K) 0/1 ``targets``: any number of labels per text."""
    rows = [_one_label(x, targets[:, j], seed) for j in range(targets.shape[1])]
    return np.stack([w for w, _ in rows]), np.array([b for _, b in rows])


def ridge(x: sp.csr_matrix, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(1, V) weight and (1,) bias of ridge regression on the scores ``targets``."""
    from sklearn.linear_model import Ridge

    model = Ridge(alpha=1.0).fit(x, targets)
    return model.coef_[None, :], np.atleast_1d(model.intercept_)


def _one_label(x: sp.csr_matrix, y: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
    if y.min() == y.max():  # always on or always off in train
        return np.zeros(x.shape[1]), CONSTANT_LOGIT if y[0] else -CONSTANT_LOGIT
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1.0, max_iter=2000, random_state=seed).fit(x, y)
    return model.coef_[0], float(model.intercept_[0])


def fit_features(
    kind: str, texts: Sequence[str], ngrams: int, min_count: int
) -> tuple[list[str], np.ndarray | None, sp.csr_matrix]:
    """The vocabulary of ``texts``, TF-IDF's inverse document frequencies (None for counts), and the
    texts' (N, V) feature rows."""
    from sklearn.feature_extraction.text import TfidfTransformer

    vectorizer = _vectorizer(ngrams, min_count)
    counts = vectorizer.fit_transform(texts).tocsr()  # (N, V)
    vocabulary = vectorizer.get_feature_names_out().tolist()
    idf = TfidfTransformer().fit(counts).idf_.astype(np.float32) if kind == "tfidf" else None
    return vocabulary, idf, tfidf_rows(counts, idf) if idf is not None else counts
