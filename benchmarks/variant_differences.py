"""Paired 95% intervals of the differences between variants of one comparison folder, beyond the ones its
verdict names (best fine-tuning against best feature-based, best against the best baseline): every variant
against a reference variant, on dev and test, by ``compare/intervals.Bootstrap.difference`` over the units
each row saved (the same resamples for both sides; each variant's seeds pooled as the report pools them).

    .venv/bin/python benchmarks/variant_differences.py runs/compare-table7-all concat-last-four
    .venv/bin/python benchmarks/variant_differences.py runs/compare-table7-5000 fine-tuning --size 5000
    .venv/bin/python benchmarks/variant_differences.py --table   # the rows of results/variant_differences.jsonl

Rows (one per variant, split and reference) go to benchmarks/results/variant_differences.jsonl.
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

from _bench import cpu
from lmtransfer.compare.intervals import Bootstrap
from lmtransfer.compare.results import read_rows
from lmtransfer.core.atomic import append_jsonl
from lmtransfer.tasks.units import Units

OUT = Path(__file__).resolve().parent / "results" / "variant_differences.jsonl"


def unit_runs(folder: Path, size: str | None) -> dict[str, dict[str, list[Units]]]:
    """variant -> split -> its seed runs' units (the latest finished row of each seed; trials left out)."""
    latest: dict[tuple, dict] = {}
    for row in read_rows(folder / "results.jsonl"):
        if row.get("status") == "ok" and row.get("trial") is None and str(row.get("train_size")) == str(size):
            latest[(row["variant"], row["seed"])] = row
    out: dict[str, dict[str, list[Units]]] = {}
    for (variant, _), row in latest.items():
        for split, name in (row.get("units") or {}).items():
            path = Path(name) if Path(name).is_absolute() else folder / name
            out.setdefault(variant, {}).setdefault(split, []).append(Units.from_bytes(path.read_bytes()))
    return out


def differences(folder: Path, reference: str, size: str | None, metric: str) -> list[dict]:
    runs = unit_runs(folder, size)
    if reference not in runs:
        raise SystemExit(f"{folder}: no finished rows of variant {reference!r} (found: {', '.join(runs)})")
    rows = []
    for split, ref in runs[reference].items():
        boot = Bootstrap(len(ref[0]))
        for variant, splits in runs.items():
            if variant == reference or split not in splits:
                continue
            d = boot.difference(splits[split], ref, metric)
            rows.append(
                {
                    "variant": variant,
                    "reference": reference,
                    "split": split,
                    "metric": metric,
                    "difference": d.estimate,
                    "low": d.low,
                    "high": d.high,
                    "tie": d.contains(0.0),
                }
            )
    return rows


def table(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    lines = [
        "| folder | train | variant minus reference | split | difference (95% interval) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        tie = ": a tie" if r["tie"] else ""
        lines.append(
            f"| {r['folder']} | {r['train_size'] or '-'} | {r['variant']} − {r['reference']} | {r['split']} "
            f"| {r['difference'] * 100:+.1f} ({r['low'] * 100:+.1f} to {r['high'] * 100:+.1f}){tie} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, nargs="?")
    parser.add_argument("reference", nargs="?", help="the variant every other is set against")
    parser.add_argument("--size", help="the training-set size of the rows (compare.train_sizes), if any")
    parser.add_argument("--metric", default="f1")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--table", action="store_true", help="print the table from --out and stop")
    args = parser.parse_args()
    if not args.table:
        if args.folder is None or args.reference is None:
            parser.error("FOLDER and REFERENCE are needed (or --table)")
        common = {"benchmark": "variant_differences", "date": datetime.date.today().isoformat(), **cpu()}
        common |= {"folder": str(args.folder), "train_size": args.size}
        for row in differences(args.folder, args.reference, args.size, args.metric):
            append_jsonl(args.out, common | row)
    print(table(args.out))


if __name__ == "__main__":
    main()
