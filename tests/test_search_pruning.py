"""compare.search's pruner: a trial stops after a dev evaluation whose metric trails the median of the trials
before it at that step (Optuna's median pruner), once enough trials have finished and past the warm-up;
a pruned trial is a row, never chosen, and the loop stops where the pruner says."""

from __future__ import annotations

import pytest

from lmtransfer import compare, load_config
from lmtransfer.compare.pruning import pruner
from lmtransfer.compare.results import read_rows
from lmtransfer.compare.row import Row
from lmtransfer.config.compare_schema import SearchConfig
from lmtransfer.training.loop import LoopArgs, fit

pytestmark = pytest.mark.usefixtures("one_thread")


def row(curve: list[float], metric: str = "accuracy", pruned: bool = False) -> Row:
    """A finished trial's row as results.jsonl holds it: its per-epoch history and its dev metric."""
    history = [{"epoch": e, "train_loss": 1.0, f"dev_{metric}": v} for e, v in enumerate(curve, 1)]
    best = min(curve) if metric == "mse" else max(curve)
    return Row("mix", "minilm", 1, history=history, dev={metric: best}, pruned_epoch=len(curve) if pruned else None)


def decisions(stop, scores: list[float]) -> list[bool]:
    return [stop(epoch, score) for epoch, score in enumerate(scores, 1)]


SEARCH = SearchConfig(prune=True, prune_startup=2, prune_warmup=1)


def test_a_trial_below_the_median_of_finished_trials_is_stopped_after_the_warm_up():
    before = [row([0.60, 0.90, 0.92]), row([0.50, 0.80, 0.84])]  # medians: 0.55, 0.85, 0.88
    # epoch 1 is warm-up; at epoch 2 its best (0.40) is below 0.85
    assert decisions(pruner(SEARCH, before, "accuracy"), [0.10, 0.40]) == [False, True]
    # its best so far counts, not its last epoch: 0.86 at epoch 2 keeps it at epoch 3 (0.86 < 0.88 prunes)
    assert decisions(pruner(SEARCH, before, "accuracy"), [0.3, 0.86, 0.70]) == [False, False, True]
    assert decisions(pruner(SEARCH, before, "accuracy"), [0.3, 0.90, 0.95]) == [False] * 3


def test_a_lower_is_better_metric_prunes_the_trial_above_the_median():
    """The table's direction (``core.choices.METRICS``): the loop reports the MSE negated, higher is better."""
    before = [row([0.5, 0.2], "mse"), row([0.6, 0.4], "mse")]  # median at epoch 2: 0.3
    assert decisions(pruner(SEARCH, before, "mse"), [-0.9, -0.5]) == [False, True]
    assert decisions(pruner(SEARCH, before, "mse"), [-0.9, -0.25]) == [False, False]


def test_no_pruning_before_enough_trials_finished_nor_without_prune():
    one = [row([0.9, 0.9])]
    assert decisions(pruner(SEARCH, one, "accuracy"), [0.0, 0.0]) == [False, False]
    # a pruned trial has not finished: it does not count towards prune_startup
    assert decisions(pruner(SEARCH, [*one, row([0.9, 0.9], pruned=True)], "accuracy"), [0.0, 0.0]) == [False] * 2
    assert pruner(SearchConfig(), [*one, *one], "accuracy") is None
    no_warm_up = SearchConfig(prune=True, prune_startup=2, prune_warmup=0)
    assert decisions(pruner(no_warm_up, [*one, *one], "accuracy"), [0.0]) == [True]


def test_the_loop_stops_where_after_evaluation_says_and_never_asks_after_the_last_step():
    from torch import nn

    from tests.toy_loop import ToyData, ToyModel, accuracy

    data = ToyData(32)
    asked: list[int] = []

    def run(stop_at: int | None, epochs: int = 4):
        asked.clear()
        return fit(
            ToyModel(),
            data,
            data,
            loss_fn=nn.functional.cross_entropy,
            evaluate=accuracy,
            args=LoopArgs(epochs=epochs, batch_size=8, patience=10, eval_steps=4, progress=False),
            after_evaluation=lambda step, score: asked.append(step) or step == stop_at,
        )

    stopped = run(stop_at=8)  # 4 steps an epoch, dev scored every 4
    assert stopped.pruned_step == 8 and stopped.pruned_epoch == 2 and asked == [4, 8]
    assert [h["step"] for h in stopped.history] == [0, 4, 8]  # dev before training is not asked about
    assert stopped.convergence("accuracy", 10).converged is False
    whole = run(stop_at=None)
    assert whole.pruned_step is None and len(whole.history) == 5 and asked == [4, 8, 12]


def test_a_search_prunes_a_trial_that_cannot_learn_and_never_chooses_it(run_overrides, tmp_path):
    """lr 1e-7 leaves the head about where it started: behind the two trials before it from its second epoch on."""
    search = (
        "compare.search={trials: 3, prune: true, prune_startup: 2, prune_warmup: 1,"
        " space: {train.lr: [0.05, 0.03, 1.0e-7]}}"
    )
    overrides = [*run_overrides, "train.epochs=4", "train.patience=10", "compare.variants=[{name: mix}]", search]
    overrides.append("train.eval_steps=6")  # 48 examples, batch 8: once an epoch
    config = load_config(
        None, [*overrides, f"compare.output_dir={tmp_path / 'cmp'}", "compare.seeds=[1]", "compare.extensions=0"]
    )
    result = compare(config, progress=False, isolate=False)
    rows = read_rows(result.directory / "results.jsonl")
    trials = [r for r in rows if r.is_trial]
    assert [r.pruned for r in trials] == [False, False, True]
    stopped = trials[2]
    ran = stopped.pruned_step // 6
    assert 2 <= ran < 4 and len(stopped.history) == ran + 1  # past the warm-up, before its last evaluation
    assert stopped.converged is False
    assert all(len(r.history) == 5 for r in trials[:2])  # steps 0, 6, 12, 18, 24
    # the decision is the pure pruner's, told the trials before it
    stop = pruner(config.compare.search, trials[:2], "accuracy")
    said = [stop(e["step"], e["dev_accuracy"]) for e in stopped.history[1:]]  # dev at steps 6, 12, ...
    assert said == [False] * (ran - 1) + [True]
    final = next(r for r in rows if not r.is_trial)
    assert final.search["pruned"] == 1 and final.search["params"]["train.lr"] != 1e-7
    assert "| 3 trials (1 pruned), " in result.report.markdown


def test_a_tpe_search_prunes_and_resumes_with_its_pruned_trials_told_as_pruned(run_overrides, tmp_path):
    """The TPE path, with trials that report made-up curves (no training): a trial that trails is stopped,
    and a search resumed from the rows tells Optuna the pruned trial as pruned and goes on numbering."""
    from lmtransfer.compare.search import run_search
    from lmtransfer.config.variants import search_plans

    search = "{trials: 4, prune: true, prune_startup: 2, space: {train.lr: {low: 1.0e-3, high: 1.0e-1, log: true}}}"
    config = load_config(None, [*run_overrides, "compare.variants=[{name: mix}]", f"compare.search={search}"])
    (plan,) = search_plans(config)
    curves = [[0.5, 0.7, 0.8], [0.6, 0.8, 0.9], [0.2, 0.3, 0.4], [0.6, 0.9, 0.95]]

    def run_trial(plan, trial, values, number, prune):
        stop = prune.build()  # what the loop is given, in this process or a child
        assert stop is not None and trial.train.score_test is False
        ran = []
        for epoch, score in enumerate(curves[number], 1):
            ran.append(score)
            if epoch < len(curves[number]) and stop(epoch, score):
                break
        history = [{"epoch": e, "dev_accuracy": v} for e, v in enumerate(ran, 1)]
        pruned = len(ran) if len(ran) < len(curves[number]) else None
        dev = {"accuracy": max(ran)}
        return Row(
            plan.variant, plan.encoder, 13, trial=number, params=values, history=history, dev=dev, pruned_step=pruned
        )

    rows: list[Row] = []
    first = run_search(plan, rows, lambda *a: rows.append(run_trial(*a)) or rows[-1])
    assert [r.pruned_step for r in rows] == [None, None, 2, None]
    assert first.pruned == 1 and first.values == rows[3].params  # the best finished trial
    resumed = run_search(plan, rows[:3], lambda *a: pytest.fail("nothing to run") if a[3] < 3 else run_trial(*a))
    assert resumed.trials == 4 and resumed.pruned == 1
