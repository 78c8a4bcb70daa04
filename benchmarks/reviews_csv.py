"""A user's own CSV, for `compare DATA` benchmarks: SST-2 training sentences of at least six words, shuffled
with a seed, written as `review,sentiment` with the labels as words (positive / negative), a train file and
a dev file. Needs ../shared/data/sst2.

    .venv/bin/python benchmarks/reviews_csv.py --rows 300 --dev 120 --out /tmp/nc   # reviews.csv, reviews-dev.csv
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from pathlib import Path

SST2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2" / "train.tsv"
WORDS = {"0": "negative", "1": "positive"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300, help="rows of reviews.csv")
    parser.add_argument("--dev", type=int, default=120, help="rows of reviews-dev.csv")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args()
    if not SST2.is_file():
        sys.exit(f"needs {SST2} (../shared/data beside the repository)")
    with open(SST2, encoding="utf-8") as handle:
        rows = [line.rstrip("\n").split("\t") for line in handle][1:]
    random.Random(args.seed).shuffle(rows)
    rows = [row for row in rows if len(row[0].split()) >= 6]
    args.out.mkdir(parents=True, exist_ok=True)
    parts = {"reviews.csv": rows[: args.rows], "reviews-dev.csv": rows[args.rows : args.rows + args.dev]}
    for name, part in parts.items():
        with open(args.out / name, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["review", "sentiment"])
            writer.writerows([text, WORDS[label]] for text, label in part)
        print(f"{args.out / name}: {len(part)} rows")


if __name__ == "__main__":
    main()
