"""The verdict's sentence on prompting: where the best prompt stands against the best trained variant of each
training-set size (a prompt row runs once, whatever the size)."""

from __future__ import annotations

from lmtransfer.compare.kinds import FEATURE_BASED, FINE_TUNING, PROMPTING
from lmtransfer.compare.results import Summary, label, metric_name, points
from lmtransfer.compare.standing import best, examples_of, gain, span, tied, train_sizes


def prompting(summaries: list[Summary]) -> str:
    """Where the best prompt stands against the best trained variant (fine-tuning or feature-based) of each
    training-set size: ahead, tied or behind, by how much, with the paired interval; e.g. "Prompting
    (prompt-4, 4 labelled examples, no training: 73.0 dev accuracy) is behind finetune by 15.0 accuracy
    (-21.0 to -9.5) at 100 training examples; ...". Empty where no prompt finished."""
    top = best(summaries, (PROMPTING,))
    if top is None:
        return ""
    scale, name = points(summaries), metric_name(summaries)
    examples = top.train_examples or 0
    tokens, speed = top.costs.get("prompt_tokens"), top.costs.get("inference")
    reads = f", {tokens.mean:,.0f} prompt tokens an example" if tokens else ""
    reads += f", {speed.mean:,.1f} examples/s to predict" if speed else ""
    head = (
        f"Prompting ({label(top, summaries)}, {examples:,} labelled example{'s' if examples != 1 else ''}, no "
        f"training{reads}: {top.dev.mean * scale:.1f} dev {name})"
    )
    parts = []
    for size in train_sizes(summaries) or [None]:
        here = [s for s in summaries if s.train_size == size]
        trained = best(here, (FINE_TUNING, FEATURE_BASED))
        if trained is None:
            continue
        d, interval = gain(top, trained, scale)
        at = f" at {examples_of(here):,} training examples" if size is not None else ""
        within = f" ({span(interval)})" if interval is not None else ""
        if tied(top, trained, d, interval, scale):
            within = f", {span(interval)}" if interval is not None else ""
            parts.append(f"is tied with {label(trained, summaries)}{at} ({d:+.1f}{within})")
        else:
            side = "ahead of" if d > 0 else "behind"
            parts.append(f"is {side} {label(trained, summaries)} by {abs(d):.1f} {name}{within}{at}")
    if not parts:
        return f"{head} is the best way that ran."
    return f"{head} {'; '.join(parts)}."
