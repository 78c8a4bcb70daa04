"""``compare.search``: equal tuning for both ways. Each searched variant (on each encoder, at each
training-set size) gets a budget of trials over its space of dotted keys, chosen by dev alone; the test
split of a trial is never scored. Its rows then run with the best trial's values.

Every trial is a row of results.jsonl (with ``trial`` and ``params``), so a killed search resumes where it
stopped: finished trials are read back, a grid goes on with the combinations not tried, and Optuna's TPE
sampler is told the finished trials before it is asked for the next. A feature-based trial reads the
features the first trial extracted (the cache), so its cost is that of training a head; a fine-tuning
trial is a whole run, which ``search.prune`` may stop after an epoch whose dev metric trails the median of
the trials before it (Optuna's median pruner); a pruned trial is a row too, and is never chosen.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lmtransfer.compare.results import LOWER_IS_BETTER
from lmtransfer.config.schema import RangeConfig, RunConfig, SearchConfig
from lmtransfer.config.variants import SearchPlan, first_values, grid
from lmtransfer.training.loop import AfterEpoch

Pruner = AfterEpoch  # what stops a trial: training.loop.fit asks it after each epoch
_Pruning = Callable[[list[dict[str, Any]]], Pruner | None]  # the trials before it -> the next trial's pruner
RunTrial = Callable[[SearchPlan, RunConfig, dict[str, Any], int, Pruner | None], dict[str, Any]]  # -> its row


@dataclass(frozen=True)
class SearchResult:
    """What a search chose, from how many trials (how many of them pruned) and what they cost."""

    values: dict[str, Any] | None  # None: no trial finished
    trials: int
    seconds: float
    pruned: int = 0

    def to_json(self) -> dict[str, Any]:
        """The ``search`` field of the rows that run with what it chose."""
        return {"params": self.values, "trials": self.trials, "seconds": self.seconds, "pruned": self.pruned}


def is_trial(row: dict[str, Any]) -> bool:
    return row.get("trial") is not None


def is_pruned(row: dict[str, Any]) -> bool:
    return row.get("pruned_epoch") is not None


def _value(row: dict[str, Any], metric: str) -> float | None:
    """A finished trial's dev metric; None for a failed or pruned one (never chosen)."""
    if row.get("status") != "ok" or is_pruned(row):
        return None
    value = (row.get("dev") or {}).get(metric)
    return float(value) if isinstance(value, int | float) else None


def run_search(plan: SearchPlan, rows: list[dict[str, Any]], run_trial: RunTrial, seed: int = 0) -> SearchResult:
    """Run the trials of ``plan`` that ``rows`` (results.jsonl) do not hold yet; the best one's values."""
    metric = plan.trial(first_values(plan.search.space), 0).train.metric or ""
    lower = metric in LOWER_IS_BETTER
    done = [r for r in rows if is_trial(r) and (r["variant"], r["encoder"], r.get("train_size")) == plan.key]
    combos = grid(plan.search.space)

    def prune(before: list[dict[str, Any]]) -> Pruner | None:  # the next trial's, told the trials before it
        return pruner(plan.search, before, metric, lower)

    if combos is not None and len(combos) <= plan.search.trials:
        found = _grid(plan, combos, done, run_trial, prune)
    else:
        found = _tpe(plan, done, run_trial, metric, lower, seed, prune)
    scored = [(v, r) for r in found if (v := _value(r, metric)) is not None]
    seconds = sum(float(r.get("child_seconds") or 0.0) for r in found)
    pruned = sum(is_pruned(r) for r in found)
    if not scored:
        warnings.warn(f"search of {plan.variant}: no trial finished; its rows run with their own values", stacklevel=2)
        return SearchResult(None, len(found), seconds, pruned)
    best = (min if lower else max)(scored, key=lambda vr: vr[0])[1]  # ties: the earliest trial
    return SearchResult(dict(best["params"]), len(found), seconds, pruned)


def pruner(search: SearchConfig, finished: list[dict[str, Any]], metric: str, lower: bool) -> Pruner | None:
    """With ``search.prune``, what stops the next trial: Optuna's median pruner, told the per-epoch dev
    curves of the search's finished trials (from their rows' histories, so a resumed search prunes as the
    first run would have), asked after each epoch of the new trial."""
    if not search.prune:
        return None
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Optuna's warm-up counts steps before the first that may be pruned; ours counts epochs (from 1) that run
    median = optuna.pruners.MedianPruner(n_startup_trials=search.prune_startup, n_warmup_steps=search.prune_warmup + 1)
    study = optuna.create_study(direction="minimize" if lower else "maximize", pruner=median)
    for row in finished:
        curve = _curve(row, metric)
        value = _value(row, metric)
        if not curve or (value is None and not is_pruned(row)):
            continue  # a failed trial says nothing of how a trial should progress
        state = optuna.trial.TrialState.PRUNED if is_pruned(row) else optuna.trial.TrialState.COMPLETE
        study.add_trial(
            optuna.trial.create_trial(state=state, value=value, intermediate_values=curve, params={}, distributions={})
        )
    trial = study.ask()

    def stop(epoch: int, score: float) -> bool:
        trial.report(score, epoch)
        return trial.should_prune()

    return stop


def _curve(row: dict[str, Any], metric: str) -> dict[int, float]:
    """A trial's dev metric after each epoch, from its row's training history."""
    key = f"dev_{metric}"
    return {int(e["epoch"]): float(e[key]) for e in row.get("history") or [] if e.get(key) is not None}


def _grid(
    plan: SearchPlan, combos: list[dict[str, Any]], done: list[dict[str, Any]], run_trial: RunTrial, prune: _Pruning
) -> list[dict[str, Any]]:
    """Each combination once, in order; one a finished row holds is not run again."""
    out: list[dict[str, Any]] = []
    for number, values in enumerate(combos):
        row = next((r for r in done if r.get("params") == values), None)
        out.append(row if row is not None else run_trial(plan, plan.trial(values, number), values, number, prune(out)))
    return out


def _distributions(space: dict[str, list[Any] | RangeConfig]) -> dict[str, Any]:
    import optuna

    out: dict[str, Any] = {}
    for key, spec in space.items():
        if isinstance(spec, RangeConfig) and spec.integer:
            out[key] = optuna.distributions.IntDistribution(int(spec.low), int(spec.high), log=spec.log)
        elif isinstance(spec, RangeConfig):
            out[key] = optuna.distributions.FloatDistribution(spec.low, spec.high, log=spec.log)
        else:  # Optuna's choices are plain values: a list (of layers, say) travels as its JSON text
            out[key] = optuna.distributions.CategoricalDistribution([json.dumps(v) for v in spec])
    return out


def _inside(distribution: Any, value: Any) -> bool:
    """Whether a finished trial's value lies in the distribution (the space may have changed since)."""
    if hasattr(distribution, "choices"):
        return value in distribution.choices
    return isinstance(value, int | float) and distribution.low <= value <= distribution.high


def _encode(values: dict[str, Any], space: dict[str, list[Any] | RangeConfig]) -> dict[str, Any]:
    return {k: json.dumps(v) if isinstance(space[k], list) else v for k, v in values.items()}


def _decode(params: dict[str, Any], space: dict[str, list[Any] | RangeConfig]) -> dict[str, Any]:
    return {k: json.loads(v) if isinstance(space[k], list) else v for k, v in params.items()}


def _tpe(
    plan: SearchPlan,
    done: list[dict[str, Any]],
    run_trial: RunTrial,
    metric: str,
    lower: bool,
    seed: int,
    prune: _Pruning,
) -> list[dict[str, Any]]:
    """Optuna's TPE sampler (seeded), told the finished trials first, asked for the rest of the budget."""
    import optuna

    space = plan.search.space
    distributions = _distributions(space)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(5, plan.search.trials))
    study = optuna.create_study(direction="minimize" if lower else "maximize", sampler=sampler)
    out = []
    for row in sorted(done, key=lambda r: r["trial"]):
        params = _encode(row.get("params") or {}, space)
        if set(params) != set(distributions) or not all(_inside(distributions[k], v) for k, v in params.items()):
            continue  # a trial of an earlier space
        value = _value(row, metric)
        state = optuna.trial.TrialState.COMPLETE if value is not None else optuna.trial.TrialState.FAIL
        state = optuna.trial.TrialState.PRUNED if is_pruned(row) else state
        study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=value, state=state))
        out.append(row)
    number = max([r["trial"] + 1 for r in done], default=0)
    while len(out) < plan.search.trials:
        trial = study.ask(distributions)
        values = _decode(trial.params, space)
        row = run_trial(plan, plan.trial(values, number), values, number, prune(out))
        value = _value(row, metric)
        if is_pruned(row):
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif value is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, value)
        out.append(row)
        number += 1
    return out
