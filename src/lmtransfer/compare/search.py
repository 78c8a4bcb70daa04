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

from lmtransfer.compare.row import Row
from lmtransfer.config.compare_schema import RangeConfig, SearchConfig
from lmtransfer.config.schema import RunConfig
from lmtransfer.config.variants import SearchPlan, first_values, grid
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


_Pruning = Callable[[list[Row]], PruneSpec]  # the trials before it -> the next trial's pruner
RunTrial = Callable[[SearchPlan, RunConfig, dict[str, Any], int, PruneSpec], Row]  # -> its row


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


def _value(row: Row, metric: str) -> float | None:
    """A finished trial's dev metric, higher is better (``core.choices.oriented``); None for a failed or
    pruned one (never chosen)."""
    value = row.dev_value(metric) if row.ok and not row.pruned else None
    return oriented(metric, value) if value is not None else None


def run_search(plan: SearchPlan, rows: list[Row], run_trial: RunTrial, seed: int = 0) -> SearchResult:
    """Run the trials of ``plan`` that ``rows`` (results.jsonl) do not hold yet; the best one's values."""
    metric = plan.trial(first_values(plan.search.space), 0).train.metric or ""
    done = [r for r in rows if r.is_trial and (r.variant, r.encoder, r.train_size) == plan.key]
    combos = grid(plan.search.space)

    def prune(before: list[Row]) -> PruneSpec:  # the next trial's, told the trials before it
        return PruneSpec(plan.search, tuple(before), metric)

    if combos is not None and len(combos) <= plan.search.trials:
        found = _grid(plan, combos, done, run_trial, prune)
        sampler = "the whole grid"
    else:
        found = _tpe(plan, done, run_trial, metric, seed, prune)
        startup = startup_trials(plan.search.trials)
        sampler = f"{startup} quasi-random (Halton) start-up points" + (
            ", then TPE" if plan.search.trials > startup else ""
        )
    scored = [(v, r) for r in found if (v := _value(r, metric)) is not None]
    seconds = sum(float(r.child_seconds or 0.0) for r in found)
    pruned = sum(r.pruned for r in found)
    if not scored:
        warnings.warn(f"search of {plan.variant}: no trial finished; its rows run with their own values", stacklevel=2)
        return SearchResult(None, len(found), seconds, pruned, sampler)
    best = max(scored, key=lambda vr: vr[0])[1]  # ties: the earliest trial
    return SearchResult(dict(best.params or {}), len(found), seconds, pruned, sampler, best)


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
        if curve and (_value(row, metric) is not None or row.pruned):  # a failed trial says nothing
            curves.append((curve, _value(row, metric), row.pruned))
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


def _grid(
    plan: SearchPlan, combos: list[dict[str, Any]], done: list[Row], run_trial: RunTrial, prune: _Pruning
) -> list[Row]:
    """Each combination once, in order; one a finished row holds is not run again."""
    out: list[Row] = []
    for number, values in enumerate(combos):
        row = next((r for r in done if r.params == values), None)
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
) -> list[Row]:
    """Optuna's TPE sampler (seeded), told the finished trials first, asked for the rest of the budget."""
    import optuna

    space = plan.search.space
    distributions = _distributions(space)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    startup = startup_trials(plan.search.trials)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    study = optuna.create_study(direction="maximize", sampler=sampler)  # values higher is better
    out = []
    for row in sorted(done, key=lambda r: r.trial or 0):
        params = _encode(row.params or {}, space)
        if set(params) != set(distributions) or not all(_inside(distributions[k], v) for k, v in params.items()):
            continue  # a trial of an earlier space
        value = _value(row, metric)
        state = optuna.trial.TrialState.COMPLETE if value is not None else optuna.trial.TrialState.FAIL
        state = optuna.trial.TrialState.PRUNED if row.pruned else state
        study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=value, state=state))
        out.append(row)
    number = max([(r.trial or 0) + 1 for r in done], default=0)
    for point in halton(distributions, startup, seed)[len(out) :]:  # the start-up trials not run yet
        study.enqueue_trial(point)
    while len(out) < plan.search.trials:
        trial = study.ask(distributions)
        values = _decode(trial.params, space)
        row = run_trial(plan, plan.trial(values, number), values, number, prune(out))
        value = _value(row, metric)
        if row.pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif value is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, value)
        out.append(row)
        number += 1
    return out
