"""Is a shipped search long enough? The SST-2 size curve's rows against those of a search twice to three
times as long, at every size: each way's row should lie within its own 95% interval of what the longer
search found (issue 27's target: no way under-trained).

    .venv/bin/python benchmarks/search_depth.py                 # runs the longer searches (seed 13)
    .venv/bin/python benchmarks/search_depth.py --sizes 3000 --out runs/compare-sst2-long-3000   # one size alone
    .venv/bin/python benchmarks/search_depth.py --table         # the comparison, from both folders

The longer search is configs/sst2-sizes.yaml with 24 trials for the frozen encoder (instead of 8) and 8 for
fine-tuning (instead of 4), run into runs/compare-sst2-long at the sizes given, with the first seed; the
shipped comparison's rows are read from runs/compare-sst2-sizes (run it first: see the config's header).
The first 4 points of both fine-tuning searches are the same (the seeded Halton start-up), so the shipped
search's 4 fine-tuning trials at a size are copied into the longer search's folder where it has none yet,
not run again (`--no-reuse` runs them again). Needs ../shared/data/sst2.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "sst2-sizes.yaml"
TRIALS = {"features": 24, "finetune": 8}


def longer(sizes: list[int], out: Path):
    """The shipped comparison's config with longer searches, at ``sizes``, into ``out``."""
    import yaml

    from lmtransfer import load_config

    written = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    variants = written["compare"]["variants"]
    for variant in variants:
        if variant.get("search"):
            variant["search"]["trials"] = TRIALS[variant["name"]]
    overrides = [f"compare.variants={json.dumps(variants)}", f"compare.output_dir={out}", "compare.seeds=[13]"]
    overrides.append(f"compare.train_sizes={json.dumps(sizes)}")
    return load_config(CONFIG, overrides)


def reuse(main: Path, out: Path, sizes: list[int]) -> int:
    """Copy the shipped search's fine-tuning trials at ``sizes`` into ``out``'s results.jsonl where it holds
    none at that size: the longer search's first trials are those very points. How many were copied."""
    source = main / "results.jsonl"
    if not source.is_file():
        return 0
    rows = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    target = out / "results.jsonl"
    have = target.read_text(encoding="utf-8").splitlines() if target.is_file() else []
    held = {(r["variant"], r.get("train_size")) for r in map(json.loads, filter(str.strip, have)) if "trial" in r}
    copied = [
        r
        for r in rows
        if r.get("trial") is not None and r["variant"] == "finetune" and r.get("train_size") in sizes
        if ("finetune", r.get("train_size")) not in held
    ]
    out.mkdir(parents=True, exist_ok=True)
    with target.open("a", encoding="utf-8") as stream:
        stream.writelines(json.dumps(r) + "\n" for r in copied)
    return len(copied)


def table(main: Path, long: Path) -> str:
    """Per size and way: the shipped row's dev [interval], the longer search's row, and whether it lies
    within the shipped row's interval."""
    from lmtransfer.compare.results import read_rows, summarize

    shipped = {(s.variant, s.train_size): s for s in summarize(read_rows(main / "results.jsonl"), main)}
    deeper = {(s.variant, s.train_size): s for s in summarize(read_rows(long / "results.jsonl"), long)}
    lines = [
        "| train | way | shipped search: dev [95% interval] | chose | longer search: dev | chose | within |",
        "|---|---|---|---|---|---|---|",
    ]
    for key in sorted(deeper, key=lambda k: (k[1] if isinstance(k[1], int) else 10**9, k[0])):
        a, b = shipped.get(key), deeper[key]
        if a is None or a.dev is None or b.dev is None or not (a.search or b.search):
            continue
        interval = a.intervals.get("dev")
        within = "-" if interval is None else ("yes" if interval.low <= b.dev.mean <= interval.high else "NO")
        shown = f"{100 * a.dev.mean:.2f}" + (
            f" [{100 * interval.low:.1f}, {100 * interval.high:.1f}]" if interval else ""
        )
        lines.append(
            f"| {key[1]} | {key[0]} | {shown} | {_chose(a)} | {100 * b.dev.mean:.2f} | {_chose(b)} | {within} |"
        )
    return "\n".join(lines)


def _chose(summary) -> str:
    values = (summary.search or {}).get("params") or {}
    trials = (summary.search or {}).get("trials", 0)
    return f"{trials} trials: " + ", ".join(
        f"{k.split('.')[-1]}={v:.3g}" if isinstance(v, float) else f"{k.split('.')[-1]}={v}" for k, v in values.items()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[100, 300, 1000, 3000])
    parser.add_argument("--main", type=Path, default=ROOT / "runs" / "compare-sst2-sizes")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "compare-sst2-long")
    parser.add_argument("--table", action="store_true", help="print the comparison of both folders and stop")
    parser.add_argument("--no-reuse", action="store_true", help="run the shipped search's fine-tuning trials again")
    args = parser.parse_args()
    if args.table:
        print(table(args.main, args.out))
        return
    if not (ROOT.parent / "shared" / "data" / "sst2" / "train.tsv").is_file():
        raise SystemExit("skipped: ../shared/data/sst2 not found (see ../shared/data/README.md)")
    import os

    import torch

    from lmtransfer import compare

    if os.environ.get("LMTRANSFER_THREADS"):  # as the CLI's --threads: the children inherit it
        torch.set_num_threads(int(os.environ["LMTRANSFER_THREADS"]))
    if not args.no_reuse:
        print(f"{reuse(args.main, args.out, args.sizes)} fine-tuning trials copied from {args.main}")
    compare(longer(args.sizes, args.out))
    print(table(args.main, args.out))


if __name__ == "__main__":
    main()
