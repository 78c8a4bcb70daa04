"""Evaluation units give back each task's metrics; the paired bootstrap against known answers: identical
predictions, scipy's bootstrap where it applies, and coverage on simulated data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from lmtransfer.compare.intervals import Bootstrap, Interval, units_to_separate
from lmtransfer.tasks.metrics import (
    classification_metrics,
    entity_metrics,
    multilabel_metrics,
    regression_metrics,
    squad_metrics,
    squad_scores,
)
from lmtransfer.tasks.units import (
    Units,
    classification_units,
    entity_units,
    multilabel_units,
    regression_units,
    squad_units,
)


def _tags(rng: np.random.Generator, length: int) -> list[str]:
    out, previous = [], "O"
    for _ in range(length):
        kind = rng.choice(["PER", "LOC"])
        tag = rng.choice(["O", f"B-{kind}", f"I-{kind}"] if previous != "O" else ["O", f"B-{kind}"])
        if tag.startswith("I-"):
            tag = "I-" + previous[2:]
        out.append(str(tag))
        previous = out[-1]
    return out


@pytest.mark.parametrize("classes", [2, 3])
def test_classification_units_give_back_accuracy_and_f1(classes):
    rng = np.random.default_rng(classes)
    gold, found = rng.integers(0, classes, 300), rng.integers(0, classes, 300)
    found[:150] = gold[:150]
    labels = [f"c{i}" for i in range(classes)]
    want = classification_metrics(gold, found, labels)
    got = classification_units(gold, found, classes).full()
    assert got["accuracy"] == pytest.approx(want["accuracy"], abs=1e-12)
    assert got["macro_f1"] == pytest.approx(want["macro_f1"], abs=1e-12)
    positive = want["per_class"]["c1"]["f1"] if classes == 2 else want["macro_f1"]
    assert got["f1"] == pytest.approx(positive, abs=1e-12)


def test_a_class_never_seen_nor_predicted_scores_f1_0_as_scikit_learn():
    gold, found = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])
    want = classification_metrics(gold, found, ["a", "b", "c"])
    assert classification_units(gold, found, 3).full()["macro_f1"] == pytest.approx(want["macro_f1"])


def test_multilabel_regression_entity_and_squad_units_give_back_their_metrics():
    rng = np.random.default_rng(0)
    gold, found = rng.random((200, 4)) < 0.3, rng.random((200, 4)) < 0.3
    want = multilabel_metrics(gold, found, list("abcd"))
    got = multilabel_units(gold, found).full()
    assert {k: got[k] for k in ("micro_f1", "macro_f1", "subset_accuracy")} == pytest.approx(
        {k: want[k] for k in ("micro_f1", "macro_f1", "subset_accuracy")}, abs=1e-12
    )

    y = rng.normal(size=300)
    y_hat = np.round(y + rng.normal(size=300), 1)  # ties, as a rounded score has: Spearman uses average ranks
    want = regression_metrics(y, y_hat)
    got = regression_units(y, y_hat).full()
    assert {k: got[k] for k in ("pearson", "spearman", "mse")} == pytest.approx(
        {k: want[k] for k in ("pearson", "spearman", "mse")}, abs=1e-10
    )
    flat = np.zeros(300)  # a constant prediction has no correlation: 0, as regression_metrics says
    assert regression_units(y, flat).full()["pearson"] == 0.0 == regression_metrics(y, flat)["pearson"]

    gold_tags = [_tags(rng, int(rng.integers(1, 12))) for _ in range(80)]
    found_tags = [[t if rng.random() < 0.8 else "O" for t in s] for s in gold_tags]
    found_tags = [_repair(s) for s in found_tags]
    want = entity_metrics(gold_tags, found_tags, "IOB2")
    got = entity_units(gold_tags, found_tags, "IOB2").full()
    assert {k: got[k] for k in ("precision", "recall", "f1")} == pytest.approx(
        {k: want[k] for k in ("precision", "recall", "f1")}, abs=1e-12
    )

    from lmtransfer.data.squad import Answer, QAExample

    questions = [QAExample(str(i), "q", "the red fox", [Answer("red fox", 4)]) for i in range(5)]
    answers = {"0": "red fox", "1": "the red fox", "2": "fox", "3": "blue"}  # "4": no prediction, scores 0
    want = squad_metrics(answers, questions)
    got = squad_units(*squad_scores(answers, questions)).full()
    assert got == pytest.approx({"exact_match": want["exact_match"], "f1": want["f1"]}, abs=1e-12)


def _repair(tags: list[str]) -> list[str]:
    """An I- tag after O becomes B- (IOB2)."""
    out = []
    for tag in tags:
        if tag.startswith("I-") and (not out or out[-1] == "O" or out[-1][2:] != tag[2:]):
            tag = "B-" + tag[2:]
        out.append(tag)
    return out


def test_units_round_trip_through_their_file_bytes():
    units = classification_units(np.array([0, 1, 2]), np.array([0, 2, 2]), 3)
    again = Units.from_bytes(units.to_bytes())
    assert again.kind == "classification" and again.meta == {"classes": 3}
    assert again.full() == units.full()
    with pytest.raises(ValueError, match="unequal length"):
        Units("regression", {"gold": np.zeros(3), "predicted": np.zeros(2)})


def test_identical_predictions_differ_by_exactly_0():
    rng = np.random.default_rng(1)
    gold = rng.integers(0, 2, 150)
    found = np.where(rng.random(150) < 0.8, gold, 1 - gold)
    same = classification_units(gold, found, 2)
    boot = Bootstrap(150, resamples=500)
    for metric in ("accuracy", "f1", "macro_f1"):
        diff = boot.difference([same], [same], metric, ("a", "b"))
        assert (diff.estimate, diff.low, diff.high) == (0.0, 0.0, 0.0)
        assert diff.contains(0.0)


def test_one_variant_and_a_paired_difference_agree_with_scipy():
    rng = np.random.default_rng(2)
    n = 250
    gold = rng.integers(0, 2, n)
    a = np.where(rng.random(n) < 0.85, gold, 1 - gold)
    b = np.where(rng.random(n) < 0.75, a, gold)  # b agrees with a mostly: a paired difference is narrow
    ua, ub = classification_units(gold, a, 2), classification_units(gold, b, 2)
    boot = Bootstrap(n, resamples=20_000, seed=3)
    ours = boot.difference([ua], [ub], "accuracy", ("a", "b"))
    theirs = stats.bootstrap(
        ((a == gold).astype(float) - (b == gold).astype(float),),
        np.mean,
        n_resamples=20_000,
        method="percentile",
        random_state=4,
    ).confidence_interval
    step = 1.01 / n  # an accuracy difference moves in steps of 1/n: the endpoints agree within one
    assert ours.low == pytest.approx(theirs.low, abs=step)
    assert ours.high == pytest.approx(theirs.high, abs=step)
    # unpaired intervals would be much wider than the paired one
    one = boot.interval([ua], "accuracy", "a")
    assert ours.half_width < one.half_width

    x = rng.normal(size=n)
    y = 0.6 * x + rng.normal(size=n)
    ours = Bootstrap(n, resamples=20_000, seed=5).interval([regression_units(x, y)], "pearson")
    theirs = stats.bootstrap(
        (x, y),
        lambda u, v, axis: stats.pearsonr(u, v, axis=axis)[0],
        paired=True,
        vectorized=True,
        n_resamples=20_000,
        method="percentile",
        random_state=6,
    ).confidence_interval
    assert ours.low == pytest.approx(theirs.low, abs=0.006)
    assert ours.high == pytest.approx(theirs.high, abs=0.006)


def test_the_95_interval_of_a_difference_covers_the_truth_93_to_97_percent_of_the_time():
    """Two correlated classifiers of known accuracy (0.80 and 0.75) on 200 fresh examples, 1,000 times."""
    rng = np.random.default_rng(7)
    covered, trials, n = 0, 1000, 200
    for trial in range(trials):
        shared = rng.random(n)  # how hard each example is: both classifiers find the same ones hard
        right_a = shared < 0.80
        right_b = np.where(rng.random(n) < 0.5, shared < 0.75, rng.random(n) < 0.75)
        gold = np.zeros(n, dtype=int)
        ua = classification_units(gold, np.where(right_a, 0, 1), 2)
        ub = classification_units(gold, np.where(right_b, 0, 1), 2)
        diff = Bootstrap(n, resamples=1000, seed=trial).difference([ua], [ub], "accuracy", ("a", "b"))
        covered += diff.contains(0.05)
    assert 0.93 <= covered / trials <= 0.97


def test_several_seeds_widen_an_interval_by_their_spread():
    rng = np.random.default_rng(8)
    n = 300
    gold = rng.integers(0, 2, n)
    runs = []
    for accuracy in (0.70, 0.80, 0.90):  # three seeds that disagree a lot
        runs.append(classification_units(gold, np.where(rng.random(n) < accuracy, gold, 1 - gold), 2))
    boot = Bootstrap(n, resamples=2000)
    together = boot.interval(runs, "accuracy", "seeds")
    alone = boot.interval(runs[1:2], "accuracy", "one")
    assert together.estimate == pytest.approx(np.mean([u.full()["accuracy"] for u in runs]))
    assert together.half_width > 1.5 * alone.half_width
    with pytest.raises(ValueError, match="evaluation units"):
        boot.interval([classification_units(gold[:10], gold[:10], 2)], "accuracy")


def test_how_many_units_would_separate_a_tie():
    assert units_to_separate(Interval(0.01, -0.01, 0.03), 200) == 800  # half-width 2x the difference: 4x
    assert units_to_separate(Interval(0.0, -0.02, 0.02), 200) is None
    assert Interval(0.5, 0.4, 0.6).scaled(-1.0).as_list() == [-0.6, -0.4]
