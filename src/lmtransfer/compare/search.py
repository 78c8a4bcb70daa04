"""``compare.search``: equal tuning for both ways. Each searched variant (on each encoder, at each
training-set size) gets a budget of trials over its space of dotted keys, chosen by dev alone; the test
split of a trial is never scored. Its rows then run with the best trial's values.

Every trial is a row of results.jsonl (with ``trial`` and ``params``), so a killed search resumes where it
stopped: finished trials are read back, a grid goes on with the combinations not tried, and Optuna's TPE
sampler is told the finished trials before it is asked for the next. A feature-based trial reads the
features the first trial extracted (the cache), so its cost is that of training a head; a fine-tuning
trial is a whole run, which ``search.prune`` may stop after an epoch whose dev metric trails the median of
the trials before it (Optuna's median pruner); a pruned trial is a row too, and is never chosen.

Where the executor runs several jobs at once (Ray), a search runs several trials side by side: a grid's
combinations in order, or TPE asked for a trial whenever a slot frees, the trials still running counted as
poor results (``constant_liar``) so that trials started together spread. The pruner is still decided in one
place (``pruner``) and travels with its trial as data (``PruneSpec``): each trial is told the trials that had
finished when it started, so trials that run side by side do not prune each other. Nothing waits on the driver
mid-trial, and with one trial at a time the search is the sequential one, trial for trial.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from lmtransfer.compare.fanout import Slots
from lmtransfer.compare.pruning import PruneSpec, trial_value
from lmtransfer.compare.row import Row
from lmtransfer.config.compare_schema import RangeConfig
from lmtransfer.config.schema import RunConfig
from lmtransfer.config.variants import SearchPlan, first_values, grid

_Pruning = Callable[[list[Row]], PruneSpec]  # the trials before it -> the next trial's pruner
RunTrial = Callable[[SearchPlan, RunConfig, dict[str, Any], int, PruneSpec], Row]  # -> its row
Cancel = Callable[[], None]  # stops the trials running (Ctrl-C)


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class SearchResult:
    """What a search chose, from how many trials (how many of them pruned) and what they cost."""

    values: dict[str, Any] | None  # None: no trial finished
    trials: int
    seconds: float
    pruned: int = 0
    sampler: str = ""  # how the trials were placed, for the report
    best: Row | None = None  # the chosen trial's row (a run the first seed's row may adopt)

    def to_json(self) -> dict[str, Any]:
        """The ``search`` field of the rows that run with what it chose."""
        out = {"params": self.values, "trials": self.trials, "seconds": self.seconds, "pruned": self.pruned}
        return out | {"sampler": self.sampler}


def run_search(
    plan: SearchPlan, rows: list[Row], run_trial: RunTrial, seed: int = 0, at_once: int = 1, cancel: Cancel = _nothing
) -> SearchResult:
    """Run the trials of ``plan`` that ``rows`` (results.jsonl) do not hold yet, ``at_once`` side by side
    (``cancel`` stops them on Ctrl-C); the best one's values."""
    metric = plan.trial(first_values(plan.search.space), 0).train.metric or ""
    done = [r for r in rows if r.is_trial and (r.variant, r.encoder, r.train_size) == plan.key]
    combos = grid(plan.search.space)

    def prune(before: list[Row]) -> PruneSpec:  # the next trial's, told the trials finished before it
        return PruneSpec(plan.search, tuple(before), metric)

    whole = combos is not None and len(combos) <= plan.search.trials
    with Slots(at_once, cancel) as slots:
        if whole:
            found = _grid(plan, combos or [], done, run_trial, prune, slots)
        else:
            found = _tpe(plan, done, run_trial, metric, seed, prune, slots)
    startup = startup_trials(plan.search.trials)
    sampler = "the whole grid" if whole else f"{startup} quasi-random (Halton) start-up points"
    sampler += ", then TPE" if not whole and plan.search.trials > startup else ""
    scored = [(v, r) for r in found if (v := trial_value(r, metric)) is not None]
    seconds = sum(float(r.child_seconds or 0.0) for r in found)
    pruned = sum(r.pruned for r in found)
    if not scored:
        warnings.warn(f"search of {plan.variant}: no trial finished; its rows run with their own values", stacklevel=2)
        return SearchResult(None, len(found), seconds, pruned, sampler)
    best = max(scored, key=lambda vr: vr[0])[1]  # ties: the earliest trial
    return SearchResult(dict(best.params or {}), len(found), seconds, pruned, sampler, best)


def _grid(
    plan: SearchPlan, combos: list[dict[str, Any]], done: list[Row], run_trial: RunTrial, prune: _Pruning, slots: Slots
) -> list[Row]:
    """Each combination once, in order (side by side, as ``slots`` allow); one a finished row holds is not run
    again. A trial's pruner is told the finished trials numbered before it."""
    found: dict[int, Row] = {}
    number_of: dict[Future, int] = {}

    def collect() -> None:
        future = slots.first_done()
        found[number_of[future]] = future.result()

    for number, values in enumerate(combos):
        row = next((r for r in done if r.params == values), None)
        if row is not None:
            found[number] = row
            continue
        while not slots.free:
            collect()
        before = [found[k] for k in sorted(found) if k < number]
        number_of[slots.start(run_trial, plan, plan.trial(values, number), values, number, prune(before))] = number
    while slots.busy:
        collect()
    return [found[k] for k in sorted(found)]


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


def startup_trials(trials: int) -> int:
    """Trials placed by the quasi-random start-up before TPE models the results: all of a budget of up to 5."""
    return min(5, trials)


def halton(distributions: dict[str, Any], n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` start-up points spread evenly over the space (a scrambled Halton sequence, seeded), in Optuna's
    encoding. Random start-up points leave holes and clumps a small budget cannot afford: two of five may
    share a learning rate's decade while a whole range of training lengths goes untried."""
    from scipy.stats import qmc

    if n < 1 or not distributions:
        return []
    units = qmc.Halton(len(distributions), scramble=True, seed=seed).random(n)  # (n, keys) in [0, 1)
    return [{key: _at(d, u) for (key, d), u in zip(distributions.items(), row)} for row in units]


def _at(distribution: Any, u: float) -> Any:
    """The value at quantile ``u`` of a distribution: uniform (or log-uniform) in a range, or a choice."""
    import math

    if hasattr(distribution, "choices"):
        return distribution.choices[min(int(u * len(distribution.choices)), len(distribution.choices) - 1)]
    low, high = distribution.low, distribution.high
    value = (
        math.exp(math.log(low) + u * (math.log(high) - math.log(low))) if distribution.log else low + u * (high - low)
    )
    if isinstance(low, int) and isinstance(high, int):
        return min(max(round(value), low), high)
    return value


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
    done: list[Row],
    run_trial: RunTrial,
    metric: str,
    seed: int,
    prune: _Pruning,
    slots: Slots,
) -> list[Row]:
    """Optuna's TPE sampler (seeded), told the finished trials first, asked for the rest of the budget: one trial
    after another, or as many side by side as ``slots`` allow, the sampler then told of the running ones
    (``constant_liar``: each counts as a poor result until it ends, so that trials started together spread)."""
    import optuna

    space = plan.search.space
    distributions = _distributions(space)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    startup = startup_trials(plan.search.trials)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=slots.n > 1)
    study = optuna.create_study(direction="maximize", sampler=sampler)  # values higher is better
    out = _told(study, done, distributions, space, metric)
    number = max([(r.trial or 0) + 1 for r in done], default=0)
    for point in halton(distributions, startup, seed)[len(out) :]:  # the start-up trials not run yet
        study.enqueue_trial(point)
    asked: dict[Future, Any] = {}
    while len(out) < plan.search.trials:
        while slots.free and len(out) + len(asked) < plan.search.trials:
            trial = study.ask(distributions)
            values = _decode(trial.params, space)
            asked[slots.start(run_trial, plan, plan.trial(values, number), values, number, prune(out))] = trial
            number += 1
        future = slots.first_done()
        row = future.result()
        _tell(study, asked.pop(future), row, metric)
        out.append(row)
    return sorted(out, key=lambda r: r.trial or 0)


def _told(study: Any, done: list[Row], distributions: dict[str, Any], space: dict[str, Any], metric: str) -> list[Row]:
    """Tell ``study`` the finished trials of ``done`` that lie in today's space; those trials."""
    import optuna

    out = []
    for row in sorted(done, key=lambda r: r.trial or 0):
        params = _encode(row.params or {}, space)
        if set(params) != set(distributions) or not all(_inside(distributions[k], v) for k, v in params.items()):
            continue  # a trial of an earlier space
        value = trial_value(row, metric)
        state = optuna.trial.TrialState.COMPLETE if value is not None else optuna.trial.TrialState.FAIL
        state = optuna.trial.TrialState.PRUNED if row.pruned else state
        study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=value, state=state))
        out.append(row)
    return out


def _tell(study: Any, trial: Any, row: Row, metric: str) -> None:
    import optuna

    value = trial_value(row, metric)
    if row.pruned:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    elif value is None:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    else:
        study.tell(trial, value)
