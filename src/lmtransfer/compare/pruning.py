"""When a search stops a trial: Optuna's median pruner over the earlier trials' dev curves, by optimizer step
(``pruner``), and what it is made of as plain data (``PruneSpec``), so that a trial run in a child process or
on a Ray worker makes the same pruner there. The loop only asks it (``training.loop.fit``'s
``after_evaluation``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lmtransfer.compare.row import Row
from lmtransfer.config.compare_schema import SearchConfig
from lmtransfer.core.choices import oriented
from lmtransfer.training.loop import AfterEvaluation

Pruner = AfterEvaluation  # what stops a trial: training.loop.fit asks it after each dev evaluation


@dataclass(frozen=True)
class PruneSpec:
    """What the next trial's pruner is made of (``pruner``): the search, its finished trials, its metric. Plain
    data, so that a trial run in a child process makes the same pruner there."""

    search: SearchConfig
    finished: tuple[Row, ...]  # the trials before it
    metric: str

    def build(self) -> Pruner | None:
        return pruner(self.search, list(self.finished), self.metric)

    def to_json(self) -> dict[str, Any]:
        keep = ("variant", "encoder", "seed", "status", "dev", "history", "pruned_step", "pruned_epoch")
        finished = [{k: v for k, v in r.to_json().items() if k in keep} for r in self.finished]
        return {"search": self.search.model_dump(mode="json"), "finished": finished, "metric": self.metric}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PruneSpec:
        finished = tuple(Row.from_json(r) for r in data["finished"])
        return cls(SearchConfig(**data["search"]), finished, data["metric"])


def trial_value(row: Row, metric: str) -> float | None:
    """A finished trial's dev metric, higher is better (``core.choices.oriented``); None for a failed or
    pruned one (never chosen)."""
    value = row.dev_value(metric) if row.ok and not row.pruned else None
    return oriented(metric, value) if value is not None else None


def pruner(search: SearchConfig, finished: list[Row], metric: str) -> Pruner | None:
    """With ``search.prune``, what stops the next trial: Optuna's median pruner, told the dev curves of the
    search's finished trials (from their rows' histories, so a resumed search prunes as the first run would
    have), asked after each dev evaluation of the new trial. Trials with other budgets are evaluated at other
    steps (``training.convergence.eval_interval``): at each step the new trial reports, a finished trial
    counts with its last evaluation at or before that step. Scores are compared higher is better
    (``core.choices.oriented``), as the loop reports them."""
    if not search.prune:
        return None
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    curves = []
    for row in finished:
        curve = _curve(row, metric)
        if curve and (trial_value(row, metric) is not None or row.pruned):  # a failed trial says nothing
            curves.append((curve, trial_value(row, metric), row.pruned))
    reported: dict[int, float] = {}

    def stop(step: int, score: float) -> bool:
        reported[step] = score
        if len(reported) <= search.prune_warmup:
            return False
        median = optuna.pruners.MedianPruner(n_startup_trials=search.prune_startup, n_warmup_steps=0)
        study = optuna.create_study(direction="maximize", pruner=median)
        for curve, value, pruned in curves:
            at = {s: _reached(curve, s) for s in reported if _reached(curve, s) is not None}
            state = optuna.trial.TrialState.PRUNED if pruned else optuna.trial.TrialState.COMPLETE
            study.add_trial(
                optuna.trial.create_trial(state=state, value=value, intermediate_values=at, params={}, distributions={})
            )
        trial = study.ask()
        for at, value in reported.items():
            trial.report(value, at)
        return trial.should_prune()

    return stop


def _reached(curve: dict[int, float], step: int) -> float | None:
    """A trial's dev score at ``step``: that of its last evaluation at or before it (None: none yet)."""
    before = [s for s in curve if s <= step]
    return curve[max(before)] if before else None


def _curve(row: Row, metric: str) -> dict[int, float]:
    """A trial's dev metric (higher is better) at each evaluation after training began, by optimizer step,
    from its row's training history (by epoch for rows from before evaluations were counted in steps)."""
    key = f"dev_{metric}"
    return {
        int(e["step"] if "step" in e else e["epoch"]): oriented(metric, float(e[key]))
        for e in row.history
        if e.get(key) is not None and e.get("step") != 0
    }
