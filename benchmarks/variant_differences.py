"""Paired 95% intervals of the differences between variants of one comparison folder, beyond the ones its
verdict names (best fine-tuning against best feature-based, best against the best baseline): every variant
against a reference variant, on dev and test, in the variant's own metric, by the functions the report
uses (``compare.results.summarize`` and ``difference``: the same resamples for both sides, each variant's
seeds drawn as the report draws them).

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
from lmtransfer.compare.results import difference, read_rows, summarize
from lmtransfer.core.atomic import append_jsonl

OUT = Path(__file__).resolve().parent / "results" / "variant_differences.jsonl"


def differences(folder: Path, reference: str, size: str | None) -> list[dict]:
    """Every variant of ``folder`` (at training-set size ``size``) minus ``reference``, on dev and test, as
    the report pairs variants: ``compare.results.summarize`` and ``difference``."""
    summaries = [s for s in summarize(read_rows(folder / "results.jsonl"), folder) if str(s.train_size) == str(size)]
    ref = next((s for s in summaries if s.variant == reference), None)
    if ref is None:
        raise SystemExit(f"{folder}: no variant {reference!r} (found: {', '.join(s.variant for s in summaries)})")
    rows = []
    for split in ("dev", "test"):
        for other in (s for s in summaries if s is not ref):
            d = difference(other, ref, split)
            if d is not None:
                rows.append(
                    {
                        "variant": other.variant,
                        "reference": reference,
                        "split": split,
                        "metric": ref.metric,
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
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--table", action="store_true", help="print the table from --out and stop")
    args = parser.parse_args()
    if not args.table:
        if args.folder is None or args.reference is None:
            parser.error("FOLDER and REFERENCE are needed (or --table)")
        common = {"benchmark": "variant_differences", "date": datetime.date.today().isoformat(), **cpu()}
        common |= {"folder": str(args.folder), "train_size": args.size}
        for row in differences(args.folder, args.reference, args.size):
            append_jsonl(args.out, common | row)
    print(table(args.out))


if __name__ == "__main__":
    main()
