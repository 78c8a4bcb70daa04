"""The report's verdict: which way wins on dev, by how much, and at what cost, in a plain sentence or
three computed from the summaries (ties within the spread over seeds, missing ways, baselines, failures)."""

from __future__ import annotations

from lmtransfer.compare.results import LOWER_IS_BETTER, Summary, label, metric_name, points
from lmtransfer.core.text import human_bytes


def _ratio(a: float, b: float) -> str:
    if b <= 0:
        return "n/a"
    r = a / b
    return f"{r:.0f}x" if r >= 10 else f"{r:.1f}x"


def _best(summaries: list[Summary], kinds: tuple[str, ...]) -> Summary | None:
    found = [s for s in summaries if s.kind in kinds and s.dev is not None]
    if not found:
        return None
    sign = 1.0 if found[0].metric in LOWER_IS_BETTER else -1.0
    return min(found, key=lambda s: sign * s.dev.mean)


def verdict(summaries: list[Summary]) -> str:
    """A plain sentence or three on which way wins on dev, and at what cost."""
    scale, name = points(summaries), metric_name(summaries)
    failed = [f"{s.variant} seed {r.get('seed')}" for s in summaries for r in s.failed]
    tail = f" {len(failed)} run(s) failed ({', '.join(failed)}); their errors are in results.jsonl." if failed else ""
    ft, fb = _best(summaries, ("fine-tuning",)), _best(summaries, ("feature-based",))
    base = _best(summaries, ("baseline", "static vectors"))
    if not (ft or fb or base):
        return "No run finished, so there is nothing to compare yet." + tail
    lower = next(s.metric for s in summaries if s.dev is not None) in LOWER_IS_BETTER
    gain = (
        (lambda a, b: (b.dev.mean - a.dev.mean) * scale) if lower else (lambda a, b: (a.dev.mean - b.dev.mean) * scale)
    )
    v = lambda s: f"{s.dev.mean * scale:.1f}"  # noqa: E731
    parts = []
    if ft and fb:
        parts.append(_ways(ft, fb, gain(ft, fb), scale, name, summaries))
    elif ft or fb:
        only = ft or fb
        missing = "feature-based" if ft else "fine-tuning"
        parts.append(
            f"The best variant is {label(only, summaries)} ({only.kind}) at {v(only)} dev {name}; no {missing} "
            "variant finished, so the two ways cannot be set side by side here."
        )
    if base:
        best = _best([s for s in (ft, fb) if s], ("fine-tuning", "feature-based"))
        if best is None:
            parts.append(f"Only baselines finished; the best is {label(base, summaries)} at {v(base)} dev {name}.")
        else:
            d = gain(best, base)
            where = "below" if d > 0 else "above"
            parts.append(
                f"The best baseline ({label(base, summaries)}, {v(base)}) is {abs(d):.1f} {name} {where} "
                f"{label(best, summaries)}."
            )
    return " ".join(parts) + tail


def _ways(ft: Summary, fb: Summary, diff: float, scale: float, name: str, summaries: list[Summary]) -> str:
    """The sentence that sets the best fine-tuning and the best feature-based variant side by side."""
    noise = max(ft.dev.std, fb.dev.std) * scale
    time = _ratio(ft.cost_seconds, fb.cost_seconds)
    stored = fb.costs.get("cache_bytes")
    storage = human_bytes(stored.mean) if stored else "none"
    own = ft.costs.get("cache_bytes")
    ft_storage = "no feature storage" if not own or own.mean == 0 else f"{human_bytes(own.mean)} of features"
    a, b = label(ft, summaries), label(fb, summaries)
    if abs(diff) <= max(noise, 0.05):
        return (
            f"Fine-tuning ({a}) and the best feature-based variant ({b}) are tied on dev {name} "
            f"({ft.dev.mean * scale:.1f} vs {fb.dev.mean * scale:.1f}, within the spread over seeds); "
            f"fine-tuning takes {time} the training time (extraction + training), feature-based stores {storage}."
        )
    if diff > 0:
        return (
            f"Fine-tuning ({a}) is +{diff:.1f} {name} over the best feature-based variant ({b}), at {time} the "
            f"training time (extraction + training) and {ft_storage} against {storage}."
        )
    return (
        f"The best feature-based variant ({b}) is +{-diff:.1f} {name} over fine-tuning ({a}), at "
        f"{_ratio(fb.cost_seconds, ft.cost_seconds)} the training time (extraction + training), storing {storage} "
        "of features."
    )
