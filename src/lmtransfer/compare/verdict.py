"""The report's verdict: which way wins on dev, by how much, and at what cost, in a plain sentence or
three computed from the summaries (missing ways, baselines, failures).

A difference is a win only when its 95% paired-bootstrap interval (over the dev examples, and the seeds
where there are several) leaves out 0; otherwise the verdict calls it a tie and says roughly how many dev
examples might tell the two apart. Rows without evaluation units (made before lmtransfer kept them) fall
back to the spread over seeds."""

from __future__ import annotations

from lmtransfer.compare.intervals import Interval, units_to_separate
from lmtransfer.compare.kinds import FEATURE_BASED, FINE_TUNING, baseline_kinds, way_kinds
from lmtransfer.compare.results import (
    Summary,
    difference,
    label,
    metric_name,
    points,
    shown_values,
    trials_text,
)
from lmtransfer.core.choices import oriented
from lmtransfer.core.text import human_bytes


def _ratio(a: float, b: float) -> str:
    if b <= 0:
        return "n/a"
    r = a / b
    return f"{r:.0f}x" if r >= 10 else f"{r:.1f}x"


def _best(summaries: list[Summary], kinds: tuple[str, ...]) -> Summary | None:
    """The best on dev of these kinds; an under-trained variant is never compared."""
    found = [s for s in summaries if s.kind in kinds and s.dev is not None and not s.under_trained]
    if not found:
        return None
    return max(found, key=lambda s: oriented(s.metric, s.dev.mean))


def verdict(summaries: list[Summary]) -> str:
    """A plain sentence or three on which way wins on dev, and at what cost; with several training-set
    sizes, that at the largest, then where along the sizes one way pulls ahead."""
    failed = [f"{s.variant}{_at(s)} seed {r.seed}" for s in summaries for r in s.failed]
    tail = f" {len(failed)} run(s) failed ({', '.join(failed)}); their errors are in results.jsonl." if failed else ""
    tail += _under_trained(summaries)
    sizes = train_sizes(summaries)
    if len(sizes) < 2:
        return _verdict_at(summaries) + tail
    largest = [s for s in summaries if s.train_size == sizes[-1]]
    head = _verdict_at(largest)
    if not head.startswith("No run"):  # (finished, or converged)
        head = f"With {_examples(largest):,} training examples: {head[0].lower()}{head[1:]}"
    return f"{head} {crossover(summaries)}".rstrip() + tail


def train_sizes(summaries: list[Summary]) -> list[int | str]:
    """The training-set sizes swept, smallest first ("all" last)."""
    sizes = {s.train_size for s in summaries if s.train_size is not None}
    return sorted(sizes, key=lambda v: float("inf") if v == "all" else float(v))


def _examples(summaries: list[Summary]) -> int:
    """How many training examples these runs (of one size) had."""
    counts = [s.train_examples for s in summaries if s.train_examples is not None]
    sizes = [s.train_size for s in summaries if isinstance(s.train_size, int)]
    return max(counts or sizes or [0])


def _under_trained(summaries: list[Summary]) -> str:
    """The sentence naming the variants left out because their runs did not converge."""
    under = [s for s in summaries if s.under_trained and s.dev is not None]
    if not under:
        judged = [s for s in summaries if s.converged]
        doubled = sum(1 for s in judged if s.extensions)
        again = f" ({doubled} after doubling their budget)" if doubled else ""
        return f" Every trained variant converged{again}." if judged else ""
    named = ", ".join(
        f"{s.variant}{_at(s)} ({s.steps.mean:,.0f} optimizer steps"
        + (f", budget doubled {s.extensions}x)" if s.extensions else ")")
        for s in under
        if s.steps is not None
    )
    return (
        f" Not compared, because their dev curves were still improving when their budget ran out (under-trained): "
        f"{named}; raise train.min_steps or compare.extensions, or search the training length."
    )


def _at(summary: Summary) -> str:
    return f" at {summary.train_size} train" if summary.train_size is not None else ""


def crossover(summaries: list[Summary]) -> str:
    """Where along the training-set sizes the best fine-tuning and the best feature-based variant are tied,
    and from where one is ahead, e.g. "up to 300 training examples the two ways are tied (...); from 1,000
    training examples on fine-tuning is ahead by 2.1 accuracy (+1.2 to +3.0) at 1,779"."""
    scale, name = points(summaries), metric_name(summaries)
    steps = []  # (examples, state, gain, interval or None)
    for size in train_sizes(summaries):
        here = [s for s in summaries if s.train_size == size]
        ft, fb = _best(here, (FINE_TUNING,)), _best(here, (FEATURE_BASED,))
        if not (ft and fb):
            continue
        gain, interval = _gain(ft, fb, scale)
        state = "tie" if _tied(ft, fb, gain, interval, scale) else (FINE_TUNING if gain > 0 else FEATURE_BASED)
        steps.append((_examples(here), state, gain, interval))
    if len(steps) < 2:
        return ""
    runs: list[list[tuple]] = []
    for step in steps:
        if runs and runs[-1][-1][1] == step[1]:
            runs[-1].append(step)
        else:
            runs.append([step])
    parts = []
    for number, run in enumerate(runs):
        first, last = run[0][0], run[-1][0]
        if len(run) == 1:
            span = f"at {first:,} training examples"
        elif number == len(runs) - 1:
            span = f"from {first:,} training examples on"
        elif number == 0:
            span = f"up to {last:,} training examples"
        else:
            span = f"from {first:,} to {last:,} training examples"
        _, state, gain, interval = run[-1]
        at = f" at {last:,}" if len(run) > 1 else ""  # the figures are the run's last size's
        if state == "tie":
            within = f", 95% interval {_span(interval)}" if interval is not None else ""
            parts.append(
                f"{span} the two ways are tied (fine-tuning minus feature-based {gain:+.1f} {name}{within}{at})"
            )
        else:
            ahead = interval if interval is None or gain > 0 else interval.scaled(-1.0)
            within = f" ({_span(ahead)})" if ahead is not None else ""
            parts.append(f"{span} {state} is ahead by {abs(gain):.1f} {name}{within}{at}")
    return f"Across training-set sizes: {'; '.join(parts)}."


def _verdict_at(summaries: list[Summary]) -> str:
    """The verdict on summaries of one training-set size."""
    scale, name = points(summaries), metric_name(summaries)
    ft, fb = _best(summaries, (FINE_TUNING,)), _best(summaries, (FEATURE_BASED,))
    others = [_best(summaries, (kind,)) for kind in way_kinds() if kind not in (FINE_TUNING, FEATURE_BASED)]
    best_way = _best([s for s in (ft, fb, *others) if s], way_kinds())  # (on a tie, fine-tuning's)
    base = _best(summaries, baseline_kinds())
    if not (best_way or base):
        what = "converged" if any(s.under_trained for s in summaries) else "finished"
        return f"No run {what}, so there is nothing to compare yet."
    v = lambda s: f"{s.dev.mean * scale:.1f}"  # noqa: E731
    parts = []
    if ft and fb:
        parts.append(_ways(ft, fb, *_gain(ft, fb, scale), scale, name, summaries))
        if ft.search or fb.search:
            parts.append(f"Tuning by dev: fine-tuning {_budget(ft)}, feature-based {_budget(fb)}.")
    elif ft or fb:
        only = ft or fb
        missing = FEATURE_BASED if ft else FINE_TUNING
        what = "converged" if any(s.under_trained and s.kind == missing for s in summaries) else "finished"
        parts.append(
            f"The best variant is {label(only, summaries)} ({only.kind}) at {v(only)} dev {name}; no {missing} "
            f"variant {what}, so the two ways cannot be set side by side here."
        )
    if base:
        if best_way is None:
            parts.append(f"Only baselines finished; the best is {label(base, summaries)} at {v(base)} dev {name}.")
        else:
            best = best_way
            d, interval = _gain(best, base, scale)
            where = "below" if d > 0 else "above"
            if interval is not None and d < 0:  # the interval of how far it is above
                interval = interval.scaled(-1.0)
            head = f"The best baseline ({label(base, summaries)}, {v(base)})"
            if interval is not None and interval.contains(0.0):
                parts.append(
                    f"{head} is tied with {label(best, summaries)}: {abs(d):.1f} {name} {where} it, a difference "
                    f"whose 95% interval ({_span(interval)}) contains 0."
                )
            else:
                within = f" ({_span(interval)}, 95% interval)" if interval is not None else ""
                parts.append(f"{head} is {abs(d):.1f} {name} {where} {label(best, summaries)}{within}.")
    return " ".join(parts)


def _gain(a: Summary, b: Summary, scale: float) -> tuple[float, Interval | None]:
    """How far a is better than b on dev, in points (negative: worse, whichever way the metric is better),
    and the paired interval of that, where both have evaluation units."""
    sign = oriented(a.metric, 1.0)
    return sign * (a.dev.mean - b.dev.mean) * scale, _scaled(difference(a, b), sign * scale)


def _tied(a: Summary, b: Summary, gain: float, interval: Interval | None, scale: float) -> bool:
    """A tie: the interval of the difference contains 0, or, for rows without units, the difference is
    within the spread over seeds."""
    if interval is not None:
        return interval.contains(0.0)
    return abs(gain) <= max(max(a.dev.std, b.dev.std) * scale, 0.05)


def _budget(summary: Summary) -> str:
    if not summary.search:
        return "none (its own values)"
    values = shown_values(summary.search["params"]) or "nothing"
    return f"{trials_text(summary.search, sampler=True)} in {summary.search['seconds']:,.0f} s (chose {values})"


def _scaled(interval: Interval | None, factor: float) -> Interval | None:
    return interval.scaled(factor) if interval is not None else None


def _span(interval: Interval) -> str:
    return f"{interval.low:+.1f} to {interval.high:+.1f}"


def _separate(interval: Interval, units: int) -> str:
    needed = units_to_separate(interval, units)
    if needed is None:
        return ""
    return (
        f"; if the difference held, roughly {needed:,} dev examples (against {units:,} here) would be needed to "
        "tell them apart"
    )


def _ways(
    ft: Summary,
    fb: Summary,
    diff: float,
    interval: Interval | None,
    scale: float,
    name: str,
    summaries: list[Summary],
) -> str:
    """The sentence that sets the best fine-tuning and the best feature-based variant side by side."""
    tied = _tied(ft, fb, diff, interval, scale)
    time = _ratio(ft.cost_seconds, fb.cost_seconds)
    stored = fb.costs.get("cache_bytes")
    storage = human_bytes(stored.mean) if stored else "none"
    own = ft.costs.get("cache_bytes")
    ft_storage = "no feature storage" if not own or own.mean == 0 else f"{human_bytes(own.mean)} of features"
    a, b = label(ft, summaries), label(fb, summaries)
    if interval is not None:
        seeds = " and the seeds" if max(len(ft.seeds), len(fb.seeds)) > 1 else ""
        units = len(ft.units["dev"][0])
        if tied:
            return (
                f"Fine-tuning ({a}) and the best feature-based variant ({b}) are tied on dev {name}: "
                f"{ft.dev.mean * scale:.1f} vs {fb.dev.mean * scale:.1f}, a difference of {diff:+.1f} whose 95% "
                f"interval over the {units:,} dev examples{seeds} ({_span(interval)}) contains 0"
                f"{_separate(interval, units)}. Fine-tuning takes {time} the training time (extraction + "
                f"training), feature-based stores {storage}."
            )
        interval = interval if diff > 0 else interval.scaled(-1.0)
        within = f" (95% interval {_span(interval)} over the {units:,} dev examples{seeds})"
    else:
        within = ""
    if tied:  # rows without units: the spread over seeds
        return (
            f"Fine-tuning ({a}) and the best feature-based variant ({b}) are tied on dev {name} "
            f"({ft.dev.mean * scale:.1f} vs {fb.dev.mean * scale:.1f}, within the spread over seeds); "
            f"fine-tuning takes {time} the training time (extraction + training), feature-based stores {storage}."
        )
    if diff > 0:
        return (
            f"Fine-tuning ({a}) is +{diff:.1f} {name} over the best feature-based variant ({b}){within}, at "
            f"{time} the training time (extraction + training) and {ft_storage} against {storage}."
        )
    return (
        f"The best feature-based variant ({b}) is +{-diff:.1f} {name} over fine-tuning ({a}){within}, at "
        f"{_ratio(fb.cost_seconds, ft.cost_seconds)} the training time (extraction + training), storing {storage} "
        "of features."
    )
