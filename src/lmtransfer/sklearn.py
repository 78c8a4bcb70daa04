"""scikit-learn estimators over lmtransfer runs: ``TransferClassifier`` and ``TransferRegressor`` take texts
(or pairs of texts, as two columns) and train a run, feature-based or fine-tuned, so that a ``Pipeline``,
``cross_val_score`` or ``GridSearchCV`` can hold one.

    from lmtransfer.sklearn import TransferClassifier
    clf = TransferClassifier(model="minilm", strategy="feature").fit(texts, labels)
    clf.predict(["Shares rose sharply."]), clf.predict_proba(["Shares rose sharply."])

The constructor only stores its arguments. ``fit`` trains one run on ``X`` (its dev set held out of ``X`` as
``train`` holds one out of a file; there is no test split, ``score`` on held-out data is the caller's test)
into a temporary folder the estimator owns (removed with it) or into ``output_dir``. The fitted estimator
pickles with its run folder packed inside it (its checkpoints left out), so that joblib's workers and a
saved estimator carry the model; a feature-based run still needs its base encoder where it was.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted

from lmtransfer import api
from lmtransfer.config.loading import load_config
from lmtransfer.core.errors import DataError
from lmtransfer.runs.loaded import Run

TEXT, PAIR, LABEL = "text", "text_pair", "label"  # the columns of the table ``fit`` hands to ``api.train``


def texts_of(X: Any, minimum: int = 1) -> tuple[list[str], list[str] | None]:
    """``X`` as (texts, second texts or None): a 1-D sequence of strings, or two columns of them (pairs), at
    least ``minimum`` of them; a ValueError for anything else (numbers, other widths), a TypeError for sparse."""
    if hasattr(X, "tocsr") or hasattr(X, "toarray"):
        raise TypeError("sparse input is not supported: X must be texts, or pairs of texts as two columns")
    if hasattr(X, "to_numpy"):  # a pandas Series or DataFrame
        X = X.to_numpy()
    rows = np.asarray(X, dtype=object)
    if rows.ndim == 2 and rows.shape[1] == 0:
        raise ValueError(f"0 feature(s) (shape={rows.shape}) while a minimum of 1 is required: X holds no texts")
    if rows.ndim in (1, 2) and rows.shape[0] < minimum:  # fitting: one sample to train on, one held out as dev
        raise ValueError(f"n_samples = {rows.shape[0]} (shape={rows.shape}) while a minimum of {minimum} is required")
    if rows.ndim == 2 and rows.shape[1] == 1:
        rows = rows[:, 0]
    if rows.ndim not in (1, 2) or (rows.ndim == 2 and rows.shape[1] != 2):
        raise ValueError(f"X must be texts (1-D) or pairs of texts (2 columns), not an array of shape {rows.shape}")
    if not all(isinstance(value, str) for value in rows.ravel()):
        bad = next(value for value in rows.ravel() if not isinstance(value, str))
        raise ValueError(f"X must hold texts (str), not {type(bad).__name__}: this estimator reads raw text")
    if rows.ndim == 2:
        return rows[:, 0].tolist(), rows[:, 1].tolist()
    return rows.tolist(), None


def _target(y: Any) -> np.ndarray:
    if y is None:
        raise ValueError("this estimator requires y to be passed, but the target y is None")
    return np.asarray(y)


class _TransferEstimator(BaseEstimator):
    """What the two estimators share: the parameters, the config they make, fitting a run, pickling it."""

    _task = ""

    def __init__(
        self,
        model: str = "minilm",
        strategy: str = "feature",
        head: str = "linear",
        epochs: int | None = None,
        min_steps: int | None = None,
        lr: float | None = None,
        max_length: int | None = None,
        batch_size: int | None = None,
        seed: int = 13,
        cache_dir: str | None = None,
        output_dir: str | None = None,
        quiet: bool = True,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.strategy = strategy
        self.head = head
        self.epochs = epochs
        self.min_steps = min_steps
        self.lr = lr
        self.max_length = max_length
        self.batch_size = batch_size
        self.seed = seed
        self.cache_dir = cache_dir
        self.output_dir = output_dir
        self.quiet = quiet
        self.overrides = overrides

    def _config_fields(self, pairs: bool, output_dir: Path) -> dict[str, Any]:
        """The run config's dotted fields; None leaves a field to the config's defaults (per strategy)."""
        chosen = {
            "encoder.max_length": self.max_length,
            "train.epochs": self.epochs,
            "train.min_steps": self.min_steps,
            "train.lr": self.lr,
            "train.batch_size": self.batch_size,
            "cache_dir": self.cache_dir,
        }
        return {
            "task": self._task,
            "strategy": self.strategy,
            "encoder.model": self.model,
            "head.type": self.head,
            **{key: value for key, value in chosen.items() if value is not None},
            "train.seed": self.seed,
            "train.score_test": False,  # no test split: the caller's score() is the test
            "data.split_seed": self.seed,
            "data.text_pair_column": PAIR if pairs else None,
            "output_dir": str(output_dir),
            **(self.overrides or {}),
        }

    def _fit_run(self, X: Any, labels: list[str]) -> None:
        texts, pairs = texts_of(X, minimum=2)
        if len(labels) != len(texts):
            raise ValueError(f"X has {len(texts)} samples but y has {len(labels)}")
        if self.output_dir is None:
            self._workdir_ = tempfile.TemporaryDirectory(prefix="lmtransfer-estimator-")
            output = Path(self._workdir_.name) / "run"
        else:
            output = Path(self.output_dir)
        table = {TEXT: texts, LABEL: labels} | ({} if pairs is None else {PAIR: pairs})
        config = load_config(None, self._config_fields(pairs is not None, output))
        # the table is also given as test, so that no test set is held out of it (score_test: false drops it)
        try:
            result = api.train(config, progress=not self.quiet, data=table, test=table)
        except DataError as exc:  # bad input, as scikit-learn's callers expect it
            raise ValueError(str(exc)) from exc
        self.run_ = Run.load(result.directory)
        self.n_features_in_ = 1 if pairs is None else 2

    def _outputs(self, X: Any) -> list[Any]:
        check_is_fitted(self, "run_")
        texts, pairs = texts_of(X)
        width = 1 if pairs is None else 2
        if width != self.n_features_in_:
            raise ValueError(f"X has {width} column(s), but this estimator was fitted on {self.n_features_in_}")
        inputs = texts if pairs is None else list(zip(texts, pairs))
        return self.run_.predict(inputs, self.batch_size)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True  # texts; a column of texts or two (pairs) is also taken as 2-D input
        return tags

    def __getstate__(self) -> dict[str, Any]:
        """Its parameters and, fitted, its run folder as a tar archive in memory (checkpoints left out)."""
        state = {key: value for key, value in self.__dict__.items() if key not in ("run_", "_workdir_")}
        if "run_" in self.__dict__:
            packed = io.BytesIO()
            with tarfile.open(fileobj=packed, mode="w:gz") as tar:
                tar.add(self.run_.directory, "run", filter=lambda info: None if "/checkpoints" in info.name else info)
            state["_packed_run"] = packed.getvalue()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        packed = state.pop("_packed_run", None)
        self.__dict__.update(state)
        if packed is not None:  # unpacked into a folder of its own, as a fit would
            self._workdir_ = tempfile.TemporaryDirectory(prefix="lmtransfer-estimator-")
            with tarfile.open(fileobj=io.BytesIO(packed), mode="r:gz") as tar:
                tar.extractall(self._workdir_.name, filter="data")
            self.run_ = Run.load(Path(self._workdir_.name) / "run")


class TransferClassifier(ClassifierMixin, _TransferEstimator):
    """One label per text (or pair): ``classes_`` in ``np.unique`` order, ``predict_proba``'s columns in
    that order, ``score`` the accuracy."""

    _task = "classification"

    def fit(self, X: Any, y: Any) -> TransferClassifier:
        y = _target(y)
        kind = type_of_target(y, input_name="y", raise_unknown=True)
        if kind not in ("binary", "multiclass"):
            raise ValueError(f"Unknown label type: {kind} (TransferClassifier takes one class per sample)")
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(f"y holds {len(self.classes_)} class(es) ({self.classes_.tolist()}); a classifier needs 2")
        self._fit_run(X, [str(label) for label in y])
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """(n_samples, n_classes): each class's probability, columns in ``classes_``' order."""
        found = self._outputs(X)
        return np.array([[row["probabilities"][str(c)] for c in self.classes_] for row in found], dtype=np.float64)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        return np.log(self.predict_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        probabilities = self.predict_proba(X)  # (N, C); first, so that an unfitted estimator says so
        return self.classes_[probabilities.argmax(axis=1)]


class TransferRegressor(RegressorMixin, _TransferEstimator):
    """One score per text (or pair); ``score`` is R^2."""

    _task = "regression"

    def fit(self, X: Any, y: Any) -> TransferRegressor:
        y = _target(y)
        if np.iscomplexobj(y):
            raise ValueError("Complex data not supported: y must be real scores")
        values = y.astype(np.float64)
        if values.ndim != 1:
            raise ValueError(f"y must be one score per sample (1-D), not shape {values.shape}")
        if not np.isfinite(values).all():
            raise ValueError("y holds NaN or infinity")
        self._fit_run(X, [repr(float(value)) for value in values])
        return self

    def predict(self, X: Any) -> np.ndarray:
        return np.array([row["score"] for row in self._outputs(X)], dtype=np.float64)
