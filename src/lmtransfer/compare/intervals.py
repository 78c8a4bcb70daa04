"""Intervals from the data: a paired bootstrap over evaluation units, and over seeds where there are several.

Every variant of a comparison is scored on the same dev and test units (texts, pairs, sentences, questions;
``tasks/units.py``). One set of resamples of those units is drawn per split and shared by every variant,
so a difference between two variants is resampled pairwise: the units that are hard for one tend to be
hard for the other, and the interval of the difference is much narrower than the two intervals suggest.
A variant with several seeds draws, in each resample, as many of its seed runs with replacement and
averages their metric, so its interval holds the spread over seeds as well as the spread over data.
Intervals are percentile intervals.

scipy's ``bootstrap`` resamples the observations of one level; here two levels are resampled (the units,
shared between variants, and each variant's seeds) and a unit may be a group (a sentence's entities, a
question's windows), so the resampling is written out below. A test checks it against scipy's on the
cases scipy can do (one seed, one unit per observation) and its coverage on simulated data.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lmtransfer.tasks.units import Units

RESAMPLES = 2000
LEVEL = 0.95
_BLOCK_NUMBERS = 4_000_000  # numbers gathered per block of resamples: bounds the memory a metric needs


@dataclass(frozen=True)
class Interval:
    """A point estimate and its interval at ``level``."""

    estimate: float
    low: float
    high: float
    level: float = LEVEL

    def contains(self, value: float = 0.0) -> bool:
        return self.low <= value <= self.high

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def scaled(self, factor: float) -> Interval:
        """The same interval in other units (fractions as points): endpoints swap under a negative factor."""
        low, high = sorted((self.low * factor, self.high * factor))
        return Interval(self.estimate * factor, low, high, self.level)

    def as_list(self) -> list[float]:
        return [self.low, self.high]


def _percentile(values: np.ndarray, estimate: float, level: float) -> Interval:
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval(float(estimate), float(low), float(high), level)


class Bootstrap:
    """The resamples of one split's units, shared by every variant scored on that split.

    ``Bootstrap(n)`` draws ``resamples`` index rows of length n once (seeded, so a report rebuilt from the
    same rows gives the same intervals); ``interval`` and ``difference`` take each variant's units, one
    ``Units`` per seed run.
    """

    def __init__(self, units: int, resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL) -> None:
        if units < 1:
            raise ValueError("a bootstrap needs at least one evaluation unit")
        self.units, self.resamples, self.seed, self.level = units, resamples, seed, level
        self.index = np.random.default_rng(seed).integers(0, units, size=(resamples, units), dtype=np.int32)
        self._memo: dict[tuple[str, str], tuple[float, np.ndarray]] = {}

    def replicates(self, runs: Sequence[Units], metric: str, key: str = "") -> tuple[float, np.ndarray]:
        """The point estimate (the mean over seed runs of the metric on all units) and the metric in each
        resample (B,). ``key`` names the variant: its seed draws are its own, and its result is kept."""
        if (key, metric) in self._memo and key:
            return self._memo[(key, metric)]
        if not runs:
            raise ValueError("no runs to resample")
        for units in runs:
            if len(units) != self.units:
                raise ValueError(f"a run has {len(units)} evaluation units where the split has {self.units}")
        per_seed = np.stack([self._metric(units, metric) for units in runs])  # (k, B)
        estimate = float(np.mean([units.full()[metric] for units in runs]))
        if len(runs) == 1:
            values = per_seed[0]
        else:  # each resample also draws k seed runs with replacement: the spread over seeds is in it
            rng = np.random.default_rng([self.seed, zlib.crc32(key.encode("utf-8"))])
            chosen = rng.integers(0, len(runs), size=(self.resamples, len(runs)))
            values = per_seed[chosen, np.arange(self.resamples)[:, None]].mean(axis=1)
        if key:
            self._memo[(key, metric)] = (estimate, values)
        return estimate, values

    def interval(self, runs: Sequence[Units], metric: str, key: str = "") -> Interval:
        estimate, values = self.replicates(runs, metric, key)
        return _percentile(values, estimate, self.level)

    def difference(
        self, a: Sequence[Units], b: Sequence[Units], metric: str, keys: tuple[str, str] = ("", "")
    ) -> Interval:
        """a - b, resampled pairwise (the same units in every resample)."""
        (ea, va), (eb, vb) = self.replicates(a, metric, keys[0]), self.replicates(b, metric, keys[1])
        return _percentile(va - vb, ea - eb, self.level)

    def _metric(self, units: Units, metric: str) -> np.ndarray:
        rows = max(1, _BLOCK_NUMBERS // (self.units * units.width))
        blocks = [units.metrics(self.index[i : i + rows], metric)[metric] for i in range(0, self.resamples, rows)]
        return np.concatenate(blocks)


def units_to_separate(difference: Interval, units: int) -> int | None:
    """Roughly how many evaluation units would make an interval as wide as this one, shrunk as
    1 / sqrt(n), exclude 0 if the difference stayed what it is now; None when it is 0."""
    if difference.estimate == 0 or difference.half_width == 0:
        return None
    return int(np.ceil(units * (difference.half_width / abs(difference.estimate)) ** 2))
