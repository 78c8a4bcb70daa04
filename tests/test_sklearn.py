"""The scikit-learn estimators on texts: inside a Pipeline and cross_val_score, clone and pickle, the
estimator contract checked on text (the properties scikit-learn's checks test on numeric matrices), and
scikit-learn's own checks, with those that feed numeric matrices declared as not applying."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from lmtransfer.sklearn import TransferClassifier, TransferRegressor
from tests.conftest import SENTENCES

LABELS = ["pos", "neg", "pos", "neg", "biz", "biz", "pos", "biz", "neg", "pos", "neg", "biz"]
X, Y = SENTENCES * 2, LABELS * 2
SCORES = np.linspace(0.0, 1.0, len(X))

NUMERIC = "feeds a numeric matrix as X; these estimators read texts (a column of texts, or two for pairs)"
NOT_APPLYING = {  # scikit-learn's checks that need numbers as X, and why (the text versions are below)
    **dict.fromkeys(
        [
            "check_classifier_data_not_an_array",
            "check_classifiers_classes",
            "check_classifiers_train",
            "check_dict_unchanged",
            "check_dont_overwrite_parameters",
            "check_dtype_object",
            "check_estimators_dtypes",
            "check_estimators_fit_returns_self",
            "check_estimators_overwrite_params",
            "check_estimators_pickle",
            "check_f_contiguous_array_estimator",
            "check_fit2d_predict1d",
            "check_fit_check_is_fitted",
            "check_fit_idempotent",
            "check_fit_score_takes_y",
            "check_methods_sample_order_invariance",
            "check_methods_subset_invariance",
            "check_n_features_in",
            "check_n_features_in_after_fitting",
            "check_pipeline_consistency",
            "check_readonly_memmap_input",
            "check_regressor_data_not_an_array",
            "check_regressors_int",
            "check_regressors_no_decision_function",
            "check_regressors_train",
            "check_supervised_y_2d",
        ],
        NUMERIC,
    ),
    "check_estimators_nan_inf": "NaN and inf are numbers; a text column holds none (a missing text is refused)",
    "check_positive_only_tag_during_fit": "negative numbers as X: texts have no sign",
    "check_fit2d_1feature": "one numeric feature: a single column of texts is accepted, numbers are refused as such",
}


CHECKED = {"epochs": 1, "min_steps": 0, "max_length": 16, "batch_size": 8}  # the model and cache are set per test


@pytest.fixture(scope="module")
def options(tiny_bert_dir, tmp_path_factory, one_thread) -> dict:
    cache = tmp_path_factory.mktemp("estimator-cache")
    return {
        "model": str(tiny_bert_dir),
        "epochs": 2,
        "min_steps": 0,
        "max_length": 32,
        "batch_size": 8,
        "cache_dir": str(cache),
    }


def test_in_a_pipeline_and_cross_val_score(options):
    lower = FunctionTransformer(lambda texts: [text.lower() for text in texts])
    pipeline = make_pipeline(lower, TransferClassifier(**options))
    scores = cross_val_score(pipeline, np.array(X), np.array(Y), cv=2)
    assert scores.shape == (2,) and ((scores >= 0) & (scores <= 1)).all()
    fitted = pipeline.fit(X, Y)
    assert set(fitted.predict(["The movie was GREAT"])) <= set(LABELS)
    r2 = cross_val_score(make_pipeline(lower, TransferRegressor(**options)), np.array(X), SCORES, cv=2)
    assert r2.shape == (2,) and np.isfinite(r2).all()


def test_fit_returns_self_and_learned_state_ends_in_underscore(options):
    clf = TransferClassifier(**options)
    assert not [name for name in vars(clf) if name.endswith("_")]
    assert clf.fit(X, Y) is clf
    assert clf.classes_.tolist() == ["biz", "neg", "pos"] and clf.n_features_in_ == 1
    assert clf.get_params() == TransferClassifier(**options).get_params()  # fit changed no parameter
    probabilities = clf.predict_proba(X[:4])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    assert clf.predict(X[:4]).tolist() == clf.classes_[probabilities.argmax(axis=1)].tolist()
    assert clf.score(X, Y) == np.mean(clf.predict(X) == np.array(Y))


def test_classes_keep_their_type_and_order(options):
    y = [10 if label == "pos" else 2 for label in Y]  # as strings "10" sorts before "2"
    clf = TransferClassifier(**options).fit(X, y)
    assert clf.classes_.tolist() == [2, 10] and set(clf.predict(X).tolist()) <= {2, 10}
    found = clf.predict_proba(X[:3])
    rows = clf.run_.predict(X[:3])
    assert found.tolist() == [[row["probabilities"]["2"], row["probabilities"]["10"]] for row in rows]


def test_pairs_as_two_columns(options):
    pairs = np.array([[a, b] for a, b in zip(X, reversed(X))], dtype=object)
    clf = TransferClassifier(**options).fit(pairs, Y)
    assert clf.n_features_in_ == 2 and clf.run_.config.data.text_pair_column == "text_pair"
    assert clf.predict(pairs[:3]).shape == (3,)
    with pytest.raises(ValueError, match="fitted on 2"):
        clf.predict(X[:3])


def test_regressor_scores_r2(options):
    reg = TransferRegressor(**options).fit(X, SCORES)
    found = reg.predict(X)
    assert found.shape == (len(X),) and found.dtype == np.float64
    assert reg.score(X, SCORES) == pytest.approx(
        1 - ((SCORES - found) ** 2).sum() / ((SCORES - SCORES.mean()) ** 2).sum()
    )


def test_same_seed_same_model_and_predictions_in_any_order(options):
    first, second = TransferClassifier(**options).fit(X, Y), TransferClassifier(**options).fit(X, Y)
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))  # fit is idempotent
    order = np.random.default_rng(0).permutation(len(X))
    whole = first.predict_proba(X)
    np.testing.assert_allclose(first.predict_proba([X[i] for i in order]), whole[order], atol=1e-6)
    one_by_one = np.vstack([first.predict_proba([text]) for text in X[:5]])
    np.testing.assert_allclose(one_by_one, whole[:5], atol=1e-6)


def test_clone_and_pickle(options, tmp_path):
    clf = TransferClassifier(**options).fit(X, Y)
    fresh = clone(clf)
    assert fresh.get_params() == clf.get_params() and not hasattr(fresh, "run_")
    restored = pickle.loads(pickle.dumps(clf))
    assert restored.run_.directory != clf.run_.directory  # its own folder, unpacked from the pickle
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
    assert not (restored.run_.directory / "checkpoints").exists()
    unfitted = pickle.loads(pickle.dumps(TransferRegressor(**options)))
    assert unfitted.get_params() == TransferRegressor(**options).get_params()


def test_output_dir_keeps_the_run(options, tmp_path):
    clf = TransferClassifier(**options, output_dir=str(tmp_path / "kept")).fit(X, Y)
    assert clf.run_.directory == tmp_path / "kept" and (tmp_path / "kept" / "config.yaml").is_file()


def test_the_temporary_run_goes_with_the_estimator(options):
    clf = TransferClassifier(**options).fit(X, Y)
    folder = clf.run_.directory
    assert folder.is_dir()
    clf._workdir_.cleanup()  # what happens when the estimator is collected
    assert not folder.exists()


@pytest.mark.parametrize(
    ("X_", "y", "message"),
    [
        ([1.0, 2.0, 3.0], ["a", "b", "a"], "must hold texts"),
        ([["a", "b", "c"]] * 3, ["a", "b", "a"], "pairs of texts"),
        (["a", "b", "c"], ["a", "a", "a"], "a classifier needs 2"),
        (["a", "b", "c"], [0.1, 0.5, 0.7], "Unknown label type"),
        (["a", "b"], ["a", "b", "a"], "X has 2 samples but y has 3"),
    ],
)
def test_bad_input_is_a_value_error(options, X_, y, message):
    with pytest.raises(ValueError, match=message):
        TransferClassifier(**options).fit(X_, y)


def test_one_sample_is_too_few(options):
    with pytest.raises(ValueError, match="n_samples = 1"):
        TransferRegressor(**options).fit(["a"], [0.5])


def test_a_data_error_reaches_sklearn_as_a_value_error(options):
    with pytest.raises(ValueError, match="field 'text': empty text"):
        TransferClassifier(**options).fit([*X[:-1], "   "], Y)


@parametrize_with_checks(
    [TransferClassifier(**CHECKED), TransferRegressor(**CHECKED)],
    expected_failed_checks=lambda estimator: NOT_APPLYING,
    xfail_strict=True,  # a check listed above that passes fails the test: the list stays exact
)
def test_sklearn_checks(estimator, check, tiny_bert_dir, tmp_path, one_thread):
    check(estimator.set_params(model=str(tiny_bert_dir), cache_dir=str(tmp_path / "cache")))
