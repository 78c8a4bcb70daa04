"""How one variant's summary stands against another's on dev: the best of some kinds, the gain of one over
another in points with its paired interval, and whether that is a tie; the training-set sizes a comparison
swept. The verdict's sentences (``compare.verdict``, ``compare.prompt_verdict``) are written from these."""

from __future__ import annotations

from lmtransfer.compare.intervals import Interval
from lmtransfer.compare.results import Summary, difference
from lmtransfer.core.choices import oriented


def best(summaries: list[Summary], kinds: tuple[str, ...]) -> Summary | None:
    """The best on dev of these kinds; an under-trained variant is never compared."""
    found = [s for s in summaries if s.kind in kinds and s.dev is not None and not s.under_trained]
    if not found:
        return None
    return max(found, key=lambda s: oriented(s.metric, s.dev.mean))


def train_sizes(summaries: list[Summary]) -> list[int | str]:
    """The training-set sizes swept, smallest first ("all" last)."""
    sizes = {s.train_size for s in summaries if s.train_size is not None}
    return sorted(sizes, key=lambda v: float("inf") if v == "all" else float(v))


def examples_of(summaries: list[Summary]) -> int:
    """How many training examples these runs (of one size) had."""
    counts = [s.train_examples for s in summaries if s.train_examples is not None]
    sizes = [s.train_size for s in summaries if isinstance(s.train_size, int)]
    return max(counts or sizes or [0])


def gain(a: Summary, b: Summary, scale: float) -> tuple[float, Interval | None]:
    """How far a is better than b on dev, in points (negative: worse, whichever way the metric is better),
    and the paired interval of that, where both have evaluation units."""
    sign = oriented(a.metric, 1.0)
    return sign * (a.dev.mean - b.dev.mean) * scale, scaled(difference(a, b), sign * scale)


def tied(a: Summary, b: Summary, gain: float, interval: Interval | None, scale: float) -> bool:
    """A tie: the interval of the difference contains 0, or, for rows without units, the difference is
    within the spread over seeds."""
    if interval is not None:
        return interval.contains(0.0)
    return abs(gain) <= max(max(a.dev.std, b.dev.std) * scale, 0.05)


def scaled(interval: Interval | None, factor: float) -> Interval | None:
    return interval.scaled(factor) if interval is not None else None


def span(interval: Interval) -> str:
    return f"{interval.low:+.1f} to {interval.high:+.1f}"
