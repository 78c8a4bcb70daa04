"""95% paired-bootstrap intervals of issue 17's main differences: each pair of cases of
``pairs_windows.py`` is trained again with its evaluation units kept (the rows of pairs_windows.jsonl
were measured before runs kept them), and ``compare/intervals.Bootstrap.difference`` resamples the dev and
the test examples.

    .venv/bin/python benchmarks/pairs_intervals.py      # ~15 minutes on 2 cores; rows: results/pairs_intervals.jsonl
    .venv/bin/python benchmarks/pairs_intervals.py --table

Runs and caches go to --work (kept, so a rerun only resamples). Needs ../shared/data (MRPC, RTE, STS-B).
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import pairs_windows
from _bench import cpu

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "pairs_intervals.jsonl"
PAIRS = [  # (a, b, metric): a - b
    ("mrpc-feature-separate-linear", "mrpc-feature-joint-linear", "accuracy"),
    ("rte-feature-separate-mlp", "rte-feature-joint-linear", "accuracy"),
    ("stsb-feature-separate-mlp-all", "stsb-feature-separate-cosine-last", "pearson"),  # b: the cosine itself
    ("bbc-feature-windows-64", "bbc-feature-truncate-64", "accuracy"),
]


def units(case: str, work: Path) -> dict:
    from lmtransfer import load_config, train
    from lmtransfer.tasks.units import Units

    out = work / case
    if not (out / "predictions" / "dev.units.npz").is_file():
        overrides = [*pairs_windows.CASES[case], f"cache_dir={work / 'cache'}", f"output_dir={out}"]
        train(load_config(None, overrides), progress=False)
    return {s: Units.from_bytes((out / "predictions" / f"{s}.units.npz").read_bytes()) for s in ("dev", "test")}


def row(a: str, b: str, metric: str, work: Path) -> dict:
    from lmtransfer.compare.intervals import Bootstrap

    ua, ub = units(a, work), units(b, work)
    out = {"a": a, "b": b, "metric": metric}
    for split in ("dev", "test"):
        d = Bootstrap(len(ua[split])).difference([ua[split]], [ub[split]], metric, (a, b))
        out[split] = {"a": ua[split].full()[metric], "b": ub[split].full()[metric], "diff": d.estimate}
        out[split] |= {"low": d.low, "high": d.high}
    return out | {"date": datetime.date.today().isoformat(), **cpu()}


def table(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    lines = ["| a | b | metric | dev a - b [95% interval] | test a - b [95% interval] |", "|---|---|---|---|---|"]
    for r in rows:
        cells = [f"{r[s]['diff']:+.4f} [{r[s]['low']:+.4f}, {r[s]['high']:+.4f}]" for s in ("dev", "test")]
        lines.append(f"| {r['a']} | {r['b']} | {r['metric']} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--work", type=Path, default=Path("runs/pairs-intervals"))
    parser.add_argument("--table", action="store_true", help="print the table from --out and stop")
    args = parser.parse_args()
    if not args.table:
        for a, b, metric in PAIRS:
            with args.out.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(row(a, b, metric, args.work)) + "\n")
    print(table(args.out))


if __name__ == "__main__":
    main()
