"""Budgets in optimizer steps and the convergence rule: a run on a small training set still takes
``train.min_steps`` steps, early stopping counts dev evaluations (never before ``min_steps``), every run
records its dev curve by step and whether it converged, and compare runs a row that did not converge again
with twice the steps, then leaves it out of the verdict as under-trained once its cap is reached."""

from __future__ import annotations

import json

import pytest
from torch import nn

from lmtransfer import api, compare, load_config
from lmtransfer.compare import worker
from lmtransfer.compare.results import read_rows
from lmtransfer.training.convergence import CONVERGED_DELTA, eval_interval, judge, planned_epochs
from lmtransfer.training.loop import LoopArgs, fit
from tests.toy_loop import ToyData, ToyModel, accuracy

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    ("scores", "patience", "converged"),
    [
        ([0.3, 0.6, 0.8, 0.8, 0.79, 0.8], 3, True),  # the best, then 3 evaluations without improvement
        ([0.3, 0.5, 0.6, 0.7, 0.75, 0.8], 3, False),  # still climbing at the end of its budget
        ([0.3, 0.6, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7 + CONVERGED_DELTA], 3, True),  # a last gain within noise
        ([0.3, 0.6, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.72], 3, False),  # a last gain beyond it
        ([0.3, 0.6, 0.7], 5, False),  # too few evaluations to tell
        ([0.4, 0.4, 0.4, 0.4, 0.4, 0.4], 3, False),  # never beat the untrained model
    ],
)
def test_the_rule_on_dev_curves(scores, patience, converged):
    found, reason = judge(scores, patience, untrained=True)
    assert found is converged and reason
    assert judge([], 3) == (None, "no dev evaluations")
    assert judge([0.3, 0.9, 0.8, 0.8, 0.8], 3, pruned=True)[0] is False


def test_budget_and_evaluation_points():
    assert planned_epochs(3, 150, 4) == 38  # 50 examples at batch 16: 3 epochs are 12 steps
    assert planned_epochs(3, 150, 313) == 3  # 10,000 at batch 32: the epochs hold more than 150 steps
    assert eval_interval(4, 150) == 10 and eval_interval(1, 1200) == 60  # at most 20 evaluations
    assert eval_interval(313, 939) == 157 and eval_interval(313, 939, 50) == 50  # twice an epoch, or as set


def toy_fit(**loop) -> list[int]:
    """The steps at which a model that cannot learn (lr 0) was evaluated on dev."""
    data = ToyData(16)
    args = LoopArgs(batch_size=8, lr=0.0, progress=False, **loop)  # 2 steps an epoch
    result = fit(ToyModel(), data, data, loss_fn=nn.functional.cross_entropy, evaluate=accuracy, args=args)
    assert result.steps == [e["step"] for e in result.history][-1]
    return [e["step"] for e in result.history]


def test_early_stopping_counts_evaluations_and_waits_for_min_steps():
    # dev before training (step 0: on the curve, not a candidate), the best at step 2, then 2 evaluations
    # without improvement: stopped at step 6
    assert toy_fit(epochs=50, eval_steps=2, patience=2) == [0, 2, 4, 6]
    # the same patience counts evaluations, not epochs: 3 epochs (6 steps) between two evaluations
    assert toy_fit(epochs=50, eval_steps=6, patience=2) == [0, 6, 12, 18]
    # nor does it stop before min_steps
    assert toy_fit(epochs=50, eval_steps=2, patience=2, min_steps=9) == [0, 2, 4, 6, 8, 10]
    # a budget that ends between two evaluations is scored at its last step
    assert toy_fit(epochs=1, eval_steps=3, patience=9, min_steps=7) == [0, 3, 6, 8]


def test_a_run_of_20_examples_takes_min_steps(run_overrides, tmp_path):
    extra = ["data.max_train_examples=20", "train.epochs=1", "train.min_steps=30", "train.patience=1"]
    result = api.train(load_config(None, [*run_overrides, *extra]), progress=False)
    metrics = json.loads((result.directory / "metrics.json").read_text())
    assert result.sizes["train"] == 20 and metrics["costs"]["optimizer_steps"] >= 30  # 3 steps an epoch, 10 epochs
    convergence = metrics["convergence"]
    assert convergence["steps"] >= 30 and convergence["budget_steps"] == 30 and convergence["eval_steps"] == 10
    assert [h["step"] for h in metrics["history"]][:2] == [0, 10]
    assert convergence["converged"] in (True, False) and convergence["reason"] and "rule" in convergence


STUCK = (
    "compare.variants=[{name: mix, set: {train.lr: 0.05}},"
    " {name: stuck, set: {strategy: finetune, features.layers: last, train.lr: 1.0e-12, train.head_lr: 1.0e-12,"
    " train.eval_steps: 20}}]"
)


def test_a_row_that_does_not_converge_is_extended_then_left_out_as_under_trained(run_overrides, tmp_path, monkeypatch):
    """lr 1e-12 leaves the model where it started: its dev score never beats the untrained one's."""
    out = tmp_path / "cmp"
    converging = ["train.epochs=20", "train.eval_steps=1", "train.patience=5"]  # the good row stops early
    config = load_config(None, [*run_overrides, *converging, STUCK, f"compare.output_dir={out}", "compare.seeds=[1]"])
    assert config.compare.extensions == 2
    result = compare(config, progress=False, isolate=False)
    rows = read_rows(out / "results.jsonl")
    mix = [r for r in rows if r.variant == "mix"]
    stuck = [r for r in rows if r.variant == "stuck"]
    assert len(mix) == 1 and mix[0].converged is True
    budgets = [r.convergence["budget_steps"] for r in stuck]
    assert [r.extension for r in stuck] == [0, 1, 2] and budgets == [120, 240, 480]
    assert [r.convergence["steps"] for r in stuck] == [120, 240, 480]  # min_steps holds off early stopping
    assert all(r.converged is False for r in stuck)
    assert len({r.config_hash for r in stuck}) == 1  # one row, three attempts
    (ft,) = [s for s in result.report.summaries if s.variant == "stuck"]
    assert ft.under_trained and ft.extensions == 2 and ft.steps.mean == 480
    text = result.report.verdict
    assert "no fine-tuning variant converged" in text and "Not compared" in text and "stuck (480 optimizer" in text
    assert "| 480 ✗ (x4) |" in result.report.markdown and "| 9 ✓ |" in result.report.markdown

    # resumed after its first attempt, the row goes on from its second
    lines = (out / "results.jsonl").read_text().splitlines()
    keep = [line for line in lines if json.loads(line).get("extension", 0) == 0]
    (out / "results.jsonl").write_text("\n".join(keep) + "\n")
    ran = []
    real = worker.train_row
    monkeypatch.setattr(worker, "train_row", lambda c, *a: ran.append(c.train.min_steps) or real(c, *a))
    again = compare(config, progress=False, isolate=False)
    assert ran == [240, 480] and again.skipped == 1
