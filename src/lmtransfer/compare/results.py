"""A comparison's rows, read back and summarised: one ``Summary`` per variant and encoder, with the mean
and sample standard deviation of each number over its finished seeds, and, where the rows' evaluation
units are on disk, a paired-bootstrap interval of its dev and test metric (``compare/intervals.py``).
What the report's table, plots and verdict are computed from."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lmtransfer.compare.intervals import Bootstrap, Interval
from lmtransfer.compare.kinds import BASELINE, kind_of, way_kinds
from lmtransfer.compare.row import Row
from lmtransfer.core.choices import METRICS, UNTRAINED
from lmtransfer.tasks.units import Units


@dataclass
class Stat:
    """Mean and sample standard deviation (ddof 1; 0 for one value) of one number over seeds."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: list[float | None]) -> Stat | None:
        known = [float(v) for v in values if v is not None]
        if not known:
            return None
        return cls(float(np.mean(known)), float(np.std(known, ddof=1)) if len(known) > 1 else 0.0, len(known))


@dataclass
class Summary:
    """One variant on one encoder: its finished seeds summarised, its failed ones counted."""

    variant: str
    encoder: str
    kind: str  # baseline, static vectors, or a way's kind: feature-based, fine-tuning (compare.kinds)
    metric: str
    seeds: list[int]
    failed: list[Row]
    dev: Stat | None = None
    test: Stat | None = None
    costs: dict[str, Stat | None] = field(default_factory=dict)
    layer_weights: tuple[list[int], list[float]] | None = None  # hidden-state indices, mean softmax weights
    curve: list[tuple[int, float]] = field(default_factory=list)  # (optimizer step, mean dev metric over seeds)
    steps: Stat | None = None  # optimizer steps its runs took
    converged: bool | None = None  # False: a seed's run did not converge (None: cannot tell, as for baselines)
    extensions: int = 0  # times its budget was doubled because a run had not converged
    units: dict[str, list[Units]] = field(default_factory=dict, repr=False)  # split -> one per finished seed
    intervals: dict[str, Interval] = field(default_factory=dict)  # split -> the metric's (its own scale)
    bootstraps: dict[str, Bootstrap] = field(default_factory=dict, repr=False)  # split -> shared by all variants
    train_size: int | str | None = None  # the compare.train_sizes entry (None: sizes not swept)
    train_examples: int | None = None  # how many training examples its runs had
    search: dict[str, Any] | None = None  # what its search chose: params, trials, seconds (None: not searched)

    @property
    def key(self) -> str:
        return f"{self.variant}|{self.encoder}|{self.train_size}"

    @property
    def under_trained(self) -> bool:
        """Not converged, even after compare doubled its budget up to the cap: never compared."""
        return self.converged is False

    @property
    def cost_seconds(self) -> float:
        """Extraction + training seconds: what it took to get this model."""
        return sum(s.mean for s in (self.costs.get("extraction"), self.costs.get("training")) if s is not None)


def read_rows(path: str | Path) -> list[Row]:
    """The rows of a results.jsonl; a line a kill cut short is skipped with a warning."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(Row.from_json(json.loads(line)))
            except (json.JSONDecodeError, TypeError):  # (TypeError: JSON, but not a row's)
                warnings.warn(f"{path}: line {number}: not a JSON row, skipped", stacklevel=2)
    return rows


def latest(rows: list[Row]) -> list[Row]:
    """The last row of each (variant, encoder, seed): a rerun's row replaces an older or failed one. In the
    order of the comparison's rows where each knows its place (rows run side by side finish in any order),
    else in the file's."""
    last: dict[tuple, Row] = {}
    for row in rows:
        last.pop(key := (row.variant, row.encoder, row.train_size, row.seed), None)
        last[key] = row
    found = list(last.values())
    if all(row.position is not None for row in found):
        found.sort(key=lambda row: row.position or 0)
    return found


Groups = dict[tuple[str, str, Any], list[Row]]  # (variant, encoder, train size) -> rows


def summarize(rows: list[Row], directory: str | Path | None = None) -> list[Summary]:
    """One Summary per (variant, encoder, training-set size), in the order they first appear; with intervals
    where every finished seed's evaluation units are found (``row.units``, relative to ``directory``)."""
    groups: Groups = {}
    for row in latest([r for r in rows if not r.is_trial]):  # a search's trials are summarised apart
        groups.setdefault((row.variant, row.encoder, row.train_size), []).append(row)
    summaries = [_summary(variant, encoder, group) for (variant, encoder, _), group in groups.items()]
    for split in ("dev", "test"):
        _resample(summaries, groups, split, Path(directory) if directory is not None else None)
    return summaries


def _resample(summaries: list[Summary], groups: Groups, split: str, directory: Path | None) -> None:
    """Each summary's interval on ``split`` from one bootstrap shared by all of them (paired resamples)."""
    for summary in summaries:
        ok = [r for r in groups[(summary.variant, summary.encoder, summary.train_size)] if r.ok]
        found = [_units(r, split, directory) for r in ok]
        if found and all(u is not None and summary.metric in u.full() for u in found):
            summary.units[split] = found
    sizes = {len(s.units[split][0]) for s in summaries if split in s.units}
    if len(sizes) != 1:  # none, or scored on different units: no shared resamples, no intervals
        return
    boot = Bootstrap(sizes.pop())
    for summary in (s for s in summaries if split in s.units):
        summary.bootstraps[split] = boot
        summary.intervals[split] = boot.interval(summary.units[split], summary.metric, summary.key)


def _units(row: Row, split: str, directory: Path | None) -> Units | None:
    name = row.units.get(split)
    if not name:
        return None
    path = Path(name)
    if not path.is_absolute() and directory is not None:
        path = directory / path
    try:
        return Units.from_bytes(path.read_bytes())
    except (OSError, ValueError, KeyError):  # a run folder removed or replaced since: no interval for it
        return None


def difference(a: Summary, b: Summary, split: str = "dev") -> Interval | None:
    """a - b on ``split`` in the metric's own scale, resampled pairwise; None without units for both."""
    boot = a.bootstraps.get(split)
    if boot is None or boot is not b.bootstraps.get(split):
        return None
    return boot.difference(a.units[split], b.units[split], a.metric, (a.key, b.key))


def _summary(variant: str, encoder: str, group: list[Row]) -> Summary:
    ok = [r for r in group if r.ok]
    metric = next((r.metric for r in ok if r.metric), "")
    kind = kind_of(encoder, group[0].strategy or "")
    out = Summary(variant, encoder, kind, metric, [r.seed for r in ok], [r for r in group if not r.ok])
    out.train_size = group[0].train_size
    if not ok:
        return out
    out.search = next((r.search for r in ok if r.search), None)
    counts = [r.sizes.get("train") for r in ok]
    if group[0].strategy in UNTRAINED:  # it reads no training set: the labelled examples it shows the model
        counts = [r.labelled_examples for r in ok]
    out.train_examples = next((int(c) for c in counts if c is not None), None)
    out.dev = Stat.of([(r.dev or {}).get(metric) for r in ok])
    out.test = Stat.of([(r.test or {}).get(metric) for r in ok])
    out.costs = {n: Stat.of([r.seconds.get(n) for r in ok]) for n in ("extraction", "training", "evaluation")}
    out.costs["peak_rss_bytes"] = Stat.of([r.peak_rss_bytes for r in ok])
    out.costs["cache_bytes"] = Stat.of([r.cache_bytes for r in ok])
    out.costs["trainable_parameters"] = Stat.of([r.trainable_parameters for r in ok])
    out.costs["inference"] = Stat.of([(r.inference or {}).get("examples_per_second") for r in ok])
    out.costs["prompt_tokens"] = Stat.of([r.prompt_tokens for r in ok])
    weights = [r.layer_weights for r in ok if r.layer_weights and r.layer_weights.get("softmax")]
    if weights and len(weights[0]["layers"]) > 1:
        out.layer_weights = (weights[0]["layers"], np.mean([w["softmax"] for w in weights], axis=0).tolist())
    out.curve = _mean_curve(ok, metric)
    judged = [r.converged for r in ok]
    out.converged = False if False in judged else (True if True in judged else None)
    out.steps = Stat.of([(r.convergence or {}).get("steps") for r in ok])
    out.extensions = max(r.extension for r in ok)
    return out


def _mean_curve(rows: list[Row], metric: str) -> list[tuple[int, float]]:
    """The dev metric at each evaluation, by optimizer step (by epoch for rows from before steps were
    recorded), averaged over the seeds evaluated at that step."""
    at: dict[int, list[float]] = {}
    for row in rows:
        for entry in row.history:
            if entry.get(f"dev_{metric}") is not None:
                at.setdefault(int(entry["step"] if "step" in entry else entry["epoch"]), []).append(
                    float(entry[f"dev_{metric}"])
                )
    return [(step, float(np.mean(values))) for step, values in sorted(at.items())]


def points(summaries: list[Summary]) -> float:
    """100 where the metric is a fraction (accuracy, F1 in 0..1), so numbers read as points; else 1."""
    values = [abs(s.dev.mean) for s in summaries if s.dev is not None]
    metric = next((s.metric for s in summaries if s.metric), "")
    return 100.0 if values and max(values) <= 1.0 and METRICS[metric].higher_is_better else 1.0


def metric_name(summaries: list[Summary]) -> str:
    metric = next((s.metric for s in summaries if s.metric), "")
    return METRICS[metric].compare_name if metric else "score"


def shown_values(values: dict[str, Any] | None) -> str:
    """A search's values for a sentence: ``train.lr=0.0003, head.type=mlp``."""
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in (values or {}).items())


def trials_text(search: dict[str, Any], sampler: bool = False) -> str:
    """A search's trials, with how many of them its pruner stopped, and (``sampler``) how they were placed:
    ``3 trials (1 pruned; 3 quasi-random (Halton) start-up points)``."""
    notes = [f"{search['pruned']} pruned"] if search.get("pruned") else []
    notes += [search["sampler"]] if sampler and search.get("sampler") else []
    return f"{search['trials']} trials" + (f" ({'; '.join(notes)})" if notes else "")


def label(summary: Summary, summaries: list[Summary]) -> str:
    """The variant's name, with its encoder where the comparison has several."""
    several = len({s.encoder for s in summaries if s.kind in way_kinds()}) > 1
    return f"{summary.variant} on {summary.encoder}" if several and summary.kind != BASELINE else summary.variant
