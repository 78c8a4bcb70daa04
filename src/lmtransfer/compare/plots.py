"""The report's plots as inline SVG (matplotlib, no pyplot state): quality against training cost and
against feature storage, the learned layer weights of each scalar mix, and learning curves."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter, ScalarFormatter

from lmtransfer.compare.kinds import kind_colors

if TYPE_CHECKING:
    from lmtransfer.compare.results import Summary

SIZE = (6.4, 4.2)


def figures(summaries: list[Summary], scale: float, metric: str) -> list[tuple[str, str]]:
    """(caption, svg) for each plot."""
    done = [s for s in summaries if s.dev is not None]
    sizes = {s.train_size for s in done if s.train_size is not None}
    if len(sizes) > 1:  # the plots of one size are those at the largest; the sizes get their own
        sized = [s for s in done if s.train_size is not None]
        largest = max(sized, key=lambda s: s.train_examples or 0).train_size
        swept, done = done, [s for s in done if s.train_size in (largest, None)]  # (unsized: trains nothing)
    out = [
        ("Quality against training cost", _svg(_quality(done, scale, metric, "cost"), 0)),
        ("Quality against feature storage", _svg(_quality(done, scale, metric, "storage"), 1)),
        ("Learned layer weights of each scalar mix", _svg(_weights(done), 2)),
        (f"Learning curves (dev {metric} at each evaluation)", _svg(_curves(done, scale, metric), 3)),
    ]
    if len(sizes) > 1:
        caption = f"Dev {metric} against the number of training examples (95% intervals)"
        out.insert(0, (caption, _svg(_sizes(swept, scale, metric), 4)))
        trained = (s for s in swept if s.train_examples and s.train_size is not None)
        smallest = min(trained, key=lambda s: s.train_examples, default=None)
        if smallest is not None:  # where too short a budget shows first
            few = [s for s in swept if s.train_size == smallest.train_size]
            caption = f"Learning curves at {smallest.train_examples:,} training examples (dev {metric})"
            out.append((caption, _svg(_curves(few, scale, metric), 5)))
    return out


def _sizes(done: list[Summary], scale: float, metric: str) -> Figure:
    """Each variant's dev metric at each training-set size, with its interval (or ± std without units)."""
    fig = Figure(figsize=SIZE)
    ax = fig.subplots()
    lines: dict[tuple[str, str], list[Summary]] = {}
    for s in done:
        lines.setdefault((s.variant, s.encoder), []).append(s)
    markers = "osD^vP*X"
    for number, ((variant, _), points) in enumerate(lines.items()):
        color = kind_colors()[points[0].kind]
        if all(p.train_size is None for p in points):  # trains nothing: a level line, its interval a band
            y, low, high = (float(v[0]) * scale for v in _bounds(points[:1]))
            ax.axhline(y, color=color, linestyle="--", label=variant)
            ax.axhspan(low, high, color=color, alpha=0.12)
            continue
        points = sorted((p for p in points if p.train_examples), key=lambda p: p.train_examples)
        if not points:
            continue
        x = np.array([p.train_examples for p in points], dtype=float)
        y, low, high = (v * scale for v in _bounds(points))
        yerr = np.abs(np.vstack([y - low, high - y]))
        ax.errorbar(x, y, yerr=yerr, fmt=f"{markers[number % len(markers)]}-", color=color, capsize=3, label=variant)
    ax.set_xscale("log")
    sizes = sorted({p.train_examples for p in done if p.train_examples and p.train_size is not None})
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes])  # the sizes run, not powers of ten
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("training examples (log)")
    ax.set_ylabel(f"dev {metric}")
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return fig


def _bounds(points: list[Summary]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each point's dev mean and its interval (or ± std without units), in the metric's own scale."""
    y = np.array([p.dev.mean for p in points])
    low = np.array([p.intervals["dev"].low if "dev" in p.intervals else p.dev.mean - p.dev.std for p in points])
    high = np.array([p.intervals["dev"].high if "dev" in p.intervals else p.dev.mean + p.dev.std for p in points])
    return y, low, high


def _svg(fig: Figure, number: int) -> str:
    """The figure as an <svg> element (no XML prologue), its ids distinct from the other figures'."""
    buffer = io.StringIO()
    with mpl.rc_context({"svg.fonttype": "none", "svg.hashsalt": f"lmtransfer-{number}"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _empty(fig: Figure, message: str) -> Figure:
    ax = fig.subplots()
    ax.text(0.5, 0.5, message, ha="center", va="center", color="#666")
    ax.set_axis_off()
    return fig


def _quality(done: list[Summary], scale: float, metric: str, axis: str) -> Figure:
    fig = Figure(figsize=SIZE)
    if not done:
        return _empty(fig, "no finished runs")
    ax = fig.subplots()
    colors = kind_colors()
    for s in done:
        if axis == "cost":
            x = max(s.cost_seconds, 1e-3)
        else:
            stored = s.costs.get("cache_bytes")
            x = stored.mean / 2**20 if stored else 0.0
        y, err = s.dev.mean * scale, s.dev.std * scale
        ax.errorbar([x], [y], yerr=[err], fmt="o", color=colors[s.kind], capsize=3)
        ax.annotate(s.variant, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    if axis == "cost":
        costs = [max(s.cost_seconds, 1e-3) for s in done]
        wide = max(costs) / min(costs) > 10  # a log axis within one decade labels only its minor ticks
        ax.set_xscale("log" if wide else "linear")
        ax.set_xlabel(f"extraction + training seconds{' (log)' if wide else ''}")
    else:
        sizes = [s.costs["cache_bytes"].mean / 2**20 for s in done if s.costs.get("cache_bytes")]
        ax.set_xscale("symlog", linthresh=min([x for x in sizes if x > 0], default=1.0))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.set_xlabel("feature cache MiB (symlog; 0 = none stored)")
    ax.set_ylabel(f"dev {metric}")
    for kind, color in colors.items():
        if any(s.kind == kind for s in done):
            ax.plot([], [], "o", color=color, label=kind)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return fig


def _weights(done: list[Summary]) -> Figure:
    fig = Figure(figsize=SIZE)
    mixes = [s for s in done if s.layer_weights is not None]
    if not mixes:
        return _empty(fig, "no scalar-mix variant")
    ax = fig.subplots()
    width = 0.8 / len(mixes)
    for i, s in enumerate(mixes):
        layers, weights = s.layer_weights
        x = np.asarray(layers, dtype=float) + (i - (len(mixes) - 1) / 2) * width
        ax.bar(x, weights, width=width, label=f"{s.variant} ({s.encoder})" if len(mixes) > 1 else s.variant)
    ax.set_xticks(sorted({i for s in mixes for i in s.layer_weights[0]}))
    ax.set_xlabel("hidden state (0 = embeddings)")
    ax.set_ylabel("softmax weight (mean over seeds)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return fig


def _curves(done: list[Summary], scale: float, metric: str) -> Figure:
    fig = Figure(figsize=SIZE)
    curves = [s for s in done if s.curve]
    if not curves:
        return _empty(fig, "no dev evaluations (baselines train in one step)")
    ax = fig.subplots()
    for s in curves:
        steps, values = zip(*s.curve)
        ax.plot(steps, np.asarray(values) * scale, "o-", markersize=3, label=s.variant)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(f"dev {metric}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig
