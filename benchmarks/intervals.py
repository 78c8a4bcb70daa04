"""How often compare's nominal 95% interval of a difference covers the true difference, on simulated data
where the truth is known, for each kind of metric it resamples, and what the resampling costs.

    .venv/bin/python benchmarks/intervals.py            # ~3 minutes on 2 cores; rows to results/intervals.jsonl
    .venv/bin/python benchmarks/intervals.py --only accuracy pearson
    .venv/bin/python benchmarks/intervals.py --table

Each trial draws fresh evaluation data from a known population, scores two correlated models on it, and
asks ``Bootstrap.difference`` for the 95% interval of model A minus model B. Population values that have
no closed form (an F1, an entity F1) are measured once on 2,000,000 draws.
- accuracy: two classifiers right on 80% and 75% of examples, finding the same examples hard.
- f1: binary, 30% positives, the positive class's F1.
- pearson: scores y + shared noise + own noise against y ~ N(0, 1).
- entity-f1: sentences of 0 to 4 entities, resampled by sentence; each sentence has its own difficulty.
- accuracy-3-seeds: three seed runs per model on one evaluation set, each seed moving a model's accuracy
  by N(0, 1 point); the truth is the expected difference over seeds and data.
- sst2-dev-size: the accuracy case at SST-2 dev's 872 examples, with the interval's mean half-width.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from _bench import cpu
from lmtransfer.compare.intervals import Bootstrap
from lmtransfer.tasks.units import Units, classification_units, entity_units, regression_units

OUT = Path(__file__).resolve().parent / "results" / "intervals.jsonl"
TRIALS, RESAMPLES = 1000, 1000
Draw = Callable[[np.random.Generator, int], tuple[list[Units], list[Units]]]


def accuracy_pair(rng: np.random.Generator, n: int):
    hard = rng.random(n)
    right_a = hard < 0.80
    right_b = np.where(rng.random(n) < 0.5, hard < 0.75, rng.random(n) < 0.75)
    gold = np.zeros(n, dtype=int)
    found_a, found_b = np.where(right_a, 0, 1), np.where(right_b, 0, 1)
    return classification_units(gold, found_a, 2), classification_units(gold, found_b, 2)


def accuracy(rng: np.random.Generator, n: int):
    a, b = accuracy_pair(rng, n)
    return [a], [b]


def accuracy_seeds(rng: np.random.Generator, n: int):
    """Three seed runs of each model on one evaluation set: each seed moves a model's accuracy by
    N(0, 1 point) and redraws the examples it gets right by chance."""
    hard, coin = rng.random(n), rng.random(n)
    gold = np.zeros(n, dtype=int)
    a_runs, b_runs = [], []
    for _ in range(3):
        shift_a, shift_b = rng.normal(0, 0.01, size=2)
        right_a = hard < 0.80 + shift_a
        right_b = np.where(coin < 0.5, hard < 0.75 + shift_b, rng.random(n) < 0.75 + shift_b)
        a_runs.append(classification_units(gold, np.where(right_a, 0, 1), 2))
        b_runs.append(classification_units(gold, np.where(right_b, 0, 1), 2))
    return a_runs, b_runs


def f1_pair(rng: np.random.Generator, n: int):
    gold = (rng.random(n) < 0.3).astype(int)
    hard = rng.random(n)
    found_a = np.where(hard < 0.85, gold, 1 - gold)
    found_b = np.where(np.where(rng.random(n) < 0.5, hard, rng.random(n)) < 0.80, gold, 1 - gold)
    return [classification_units(gold, found_a, 2)], [classification_units(gold, found_b, 2)]


def pearson_pair(rng: np.random.Generator, n: int):
    y = rng.normal(size=n)
    shared = rng.normal(scale=0.5, size=n)
    a = y + shared + rng.normal(scale=0.5, size=n)
    b = y + shared + rng.normal(scale=0.7, size=n)
    return [regression_units(y, a)], [regression_units(y, b)]


def _sentence_tags(count: int, found: np.ndarray) -> tuple[list[str], list[str]]:
    """A sentence of ``count`` one-word entities between O words; ``found[i]`` whether entity i is tagged."""
    gold, predicted = [], []
    for i in range(count):
        gold += ["O", "B-PER"]
        predicted += ["O", "B-PER" if found[i] else "O"]
    return [*gold, "O"], [*predicted, "O"]


def entity_pair(rng: np.random.Generator, n: int):
    counts = rng.integers(0, 5, n)
    difficulty = rng.random(n)  # a sentence's entities are all easy or all hard together
    gold_all, a_all, b_all = [], [], []
    for count, d in zip(counts, difficulty):
        hits = rng.random(count)
        gold, a = _sentence_tags(count, hits < 0.95 - 0.3 * d)
        _, b = _sentence_tags(count, hits < 0.90 - 0.3 * d)
        gold_all.append(gold)
        a_all.append(a)
        b_all.append(b)
    return [entity_units(gold_all, a_all, "IOB2")], [entity_units(gold_all, b_all, "IOB2")]


CASES: dict[str, tuple[Draw, str, int]] = {
    "accuracy": (accuracy, "accuracy", 200),
    "f1": (f1_pair, "f1", 400),
    "pearson": (pearson_pair, "pearson", 300),
    "entity-f1": (entity_pair, "f1", 300),
    "accuracy-3-seeds": (accuracy_seeds, "accuracy", 200),
    "sst2-dev-size": (accuracy, "accuracy", 872),
}
TRUE_BY_FORMULA = {"accuracy": 0.05, "accuracy-3-seeds": 0.05, "sst2-dev-size": 0.05}


def truth(case: str) -> float:
    """The population difference: by formula where there is one, else on one very large draw."""
    if case in TRUE_BY_FORMULA:
        return TRUE_BY_FORMULA[case]
    draw, metric, _ = CASES[case]
    if case == "pearson":  # corr(y, y + s + e) = 1 / sqrt(1 + var s + var e)
        return 1 / np.sqrt(1 + 0.25 + 0.25) - 1 / np.sqrt(1 + 0.25 + 0.49)
    n = 2_000_000 if case != "entity-f1" else 400_000  # sentences carry ~2 entities each
    (a,), (b,) = draw(np.random.default_rng(12345), n)
    return a.full()[metric] - b.full()[metric]


def run_case(case: str, trials: int, resamples: int) -> dict:
    draw, metric, n = CASES[case]
    true = truth(case)
    rng = np.random.default_rng(2026)
    covered, widths = 0, []
    began = time.perf_counter()
    for trial in range(trials):
        a, b = draw(rng, n)
        diff = Bootstrap(len(a[0]), resamples=resamples, seed=trial).difference(a, b, metric, ("a", "b"))
        covered += diff.contains(true)
        widths.append(diff.half_width)
    seconds = time.perf_counter() - began
    return {
        "case": case,
        "metric": metric,
        "units": n,
        "trials": trials,
        "resamples": resamples,
        "true_difference": true,
        "coverage": covered / trials,
        "coverage_se": float(np.sqrt(0.95 * 0.05 / trials)),
        "mean_half_width": float(np.mean(widths)),
        "seconds_per_interval": seconds / trials,
        "date": time.strftime("%Y-%m-%d"),
        **cpu(),
    }


def table(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    lines = ["| case | metric | units | trials | true difference | coverage | mean half-width | ms per interval |"]
    lines.append("|---|---|---|---|---|---|---|---|")
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['metric']} | {r['units']} | {r['trials']} | {r['true_difference']:.4f} | "
            f"{r['coverage'] * 100:.1f}% | {r['mean_half_width']:.4f} | {r['seconds_per_interval'] * 1000:.1f} |"
        )
    if rows:
        lines.append(f"\nCPU: {rows[-1]['cpu']} ({', '.join(rows[-1]['isa'])}), {rows[-1]['cores']} cores")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--only", nargs="*", help="case names (default: all)")
    parser.add_argument("--trials", type=int, default=TRIALS)
    parser.add_argument("--resamples", type=int, default=RESAMPLES)
    parser.add_argument("--table", action="store_true", help="print the table from --out and stop")
    args = parser.parse_args()
    if args.table:
        print(table(args.out))
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for case in [c for c in CASES if not args.only or c in args.only]:
        row = run_case(case, args.trials, args.resamples)
        with args.out.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        print(f"{case}: coverage {row['coverage']:.3f} over {row['trials']} trials", flush=True)
    print(table(args.out))


if __name__ == "__main__":
    main()
