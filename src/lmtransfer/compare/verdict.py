"""The report's verdict: which way wins on dev, by how much, and at what cost, in a plain sentence or
three computed from the summaries (missing ways, baselines, failures).

A difference is a win only when its 95% paired-bootstrap interval (over the dev examples, and the seeds
where there are several) leaves out 0; otherwise the verdict calls it a tie and says roughly how many dev
examples might tell the two apart. Rows without evaluation units (made before lmtransfer kept them) fall
back to the spread over seeds."""

from __future__ import annotations

from lmtransfer.compare.intervals import Interval, units_to_separate
from lmtransfer.compare.kinds import FEATURE_BASED, FINE_TUNING, baseline_kinds, way_kinds
from lmtransfer.compare.prompt_verdict import prompting
from lmtransfer.compare.results import (
    Summary,
    label,
    metric_name,
    points,
    shown_values,
    trials_text,
)
from lmtransfer.compare.standing import best, examples_of, gain, span, tied, train_sizes
from lmtransfer.core.text import human_bytes


def _ratio(a: float, b: float) -> str:
    if b <= 0:
        return "n/a"
    r = a / b
    return f"{r:.0f}x" if r >= 10 else f"{r:.1f}x"


def verdict(summaries: list[Summary]) -> str:
    """A plain sentence or three on which way wins on dev, and at what cost; with several training-set
    sizes, that at the largest, then where along the sizes one way pulls ahead."""
    failed = [f"{s.variant}{_at(s)} seed {r.seed}" for s in summaries for r in s.failed]
    tail = f" {len(failed)} run(s) failed ({', '.join(failed)}); their errors are in results.jsonl." if failed else ""
    tail += _under_trained(summaries)
    sizes = train_sizes(summaries)
    if len(sizes) < 2:
        return " ".join(part for part in (_verdict_at(summaries), prompting(summaries)) if part) + tail
    # a way that trains nothing ran once, unsized: it stands beside every size
    largest = [s for s in summaries if s.train_size in (sizes[-1], None)]
    head = _verdict_at(largest)
    if not head.startswith("No run"):  # (finished, or converged)
        head = f"With {examples_of(largest):,} training examples: {head[0].lower()}{head[1:]}"
    return " ".join(part for part in (head, crossover(summaries), prompting(summaries)) if part) + tail


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
        ft, fb = best(here, (FINE_TUNING,)), best(here, (FEATURE_BASED,))
        if not (ft and fb):
            continue
        d, interval = gain(ft, fb, scale)
        state = "tie" if tied(ft, fb, d, interval, scale) else (FINE_TUNING if d > 0 else FEATURE_BASED)
        steps.append((examples_of(here), state, d, interval))
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
            sizes = f"at {first:,} training examples"
        elif number == len(runs) - 1:
            sizes = f"from {first:,} training examples on"
        elif number == 0:
            sizes = f"up to {last:,} training examples"
        else:
            sizes = f"from {first:,} to {last:,} training examples"
        _, state, d, interval = run[-1]
        at = f" at {last:,}" if len(run) > 1 else ""  # the figures are the run's last size's
        if state == "tie":
            within = f", 95% interval {span(interval)}" if interval is not None else ""
            parts.append(f"{sizes} the two ways are tied (fine-tuning minus feature-based {d:+.1f} {name}{within}{at})")
        else:
            ahead = interval if interval is None or d > 0 else interval.scaled(-1.0)
            within = f" ({span(ahead)})" if ahead is not None else ""
            parts.append(f"{sizes} {state} is ahead by {abs(d):.1f} {name}{within}{at}")
    return f"Across training-set sizes: {'; '.join(parts)}."


def _verdict_at(summaries: list[Summary]) -> str:
    """The verdict on summaries of one training-set size."""
    scale, name = points(summaries), metric_name(summaries)
    ft, fb = best(summaries, (FINE_TUNING,)), best(summaries, (FEATURE_BASED,))
    others = [best(summaries, (kind,)) for kind in way_kinds() if kind not in (FINE_TUNING, FEATURE_BASED)]
    best_way = best([s for s in (ft, fb, *others) if s], way_kinds())  # (on a tie, fine-tuning's)
    base = best(summaries, baseline_kinds())
    if not (best_way or base):
        what = "converged" if any(s.under_trained for s in summaries) else "finished"
        return f"No run {what}, so there is nothing to compare yet."
    v = lambda s: f"{s.dev.mean * scale:.1f}"  # noqa: E731
    parts = []
    if ft and fb:
        parts.append(_ways(ft, fb, *gain(ft, fb, scale), scale, name, summaries))
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
            top = best_way
            d, interval = gain(top, base, scale)
            where = "below" if d > 0 else "above"
            if interval is not None and d < 0:  # the interval of how far it is above
                interval = interval.scaled(-1.0)
            head = f"The best baseline ({label(base, summaries)}, {v(base)})"
            if interval is not None and interval.contains(0.0):
                parts.append(
                    f"{head} is tied with {label(top, summaries)}: {abs(d):.1f} {name} {where} it, a difference "
                    f"whose 95% interval ({span(interval)}) contains 0."
                )
            else:
                within = f" ({span(interval)}, 95% interval)" if interval is not None else ""
                parts.append(f"{head} is {abs(d):.1f} {name} {where} {label(top, summaries)}{within}.")
    return " ".join(parts)


def _budget(summary: Summary) -> str:
    if not summary.search:
        return "none (its own values)"
    values = shown_values(summary.search["params"]) or "nothing"
    return f"{trials_text(summary.search, sampler=True)} in {summary.search['seconds']:,.0f} s (chose {values})"


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
    even = tied(ft, fb, diff, interval, scale)
    time = _ratio(ft.cost_seconds, fb.cost_seconds)
    stored = fb.costs.get("cache_bytes")
    storage = human_bytes(stored.mean) if stored else "none"
    own = ft.costs.get("cache_bytes")
    ft_storage = "no feature storage" if not own or own.mean == 0 else f"{human_bytes(own.mean)} of features"
    a, b = label(ft, summaries), label(fb, summaries)
    if interval is not None:
        seeds = " and the seeds" if max(len(ft.seeds), len(fb.seeds)) > 1 else ""
        units = len(ft.units["dev"][0])
        if even:
            return (
                f"Fine-tuning ({a}) and the best feature-based variant ({b}) are tied on dev {name}: "
                f"{ft.dev.mean * scale:.1f} vs {fb.dev.mean * scale:.1f}, a difference of {diff:+.1f} whose 95% "
                f"interval over the {units:,} dev examples{seeds} ({span(interval)}) contains 0"
                f"{_separate(interval, units)}. Fine-tuning takes {time} the training time (extraction + "
                f"training), feature-based stores {storage}."
            )
        interval = interval if diff > 0 else interval.scaled(-1.0)
        within = f" (95% interval {span(interval)} over the {units:,} dev examples{seeds})"
    else:
        within = ""
    if even:  # rows without units: the spread over seeds
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
