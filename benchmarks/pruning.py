"""What ``compare.search``'s pruner would have done to the fine-tuning searches already measured: each
search's trials replayed in their order through ``compare.search.pruner`` (the function a search calls),
told the trials before each (as pruned where the replay pruned them), on the per-epoch dev curves the rows
recorded. Nothing is trained again: a pruning decision depends on those curves alone.

    .venv/bin/python benchmarks/pruning.py            # seconds; rows to benchmarks/results/pruning.jsonl
    .venv/bin/python benchmarks/pruning.py --table
    .venv/bin/python benchmarks/pruning.py --prune-startup 1 --prune-warmup 1 --out /tmp/pruning.jsonl

For each search: which trials the pruner stops and after which epoch, whether the configuration the
search chooses changes, and the training seconds it saves, estimated as a pruned trial's training seconds
times the share of its epochs that would not run (an epoch's cost is about constant within a run).
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

from _bench import cpu
from lmtransfer.compare.row import Row
from lmtransfer.compare.search import pruner
from lmtransfer.config.schema import SearchConfig
from lmtransfer.core.atomic import append_jsonl

HERE = Path(__file__).resolve().parent
SOURCES = ["compare-sst2-sizes.jsonl", "compare-conll2003-sizes.jsonl", "compare-demo-sizes.jsonl"]
OUT = HERE / "results" / "pruning.jsonl"


def searches(path: Path) -> dict[tuple, list[dict]]:
    """The fine-tuning searches of one results file: (variant, train size) -> its trials in order."""
    found: dict[tuple, list[dict]] = {}
    for line in path.read_text().splitlines():
        row = json.loads(line) if line.strip() else {}
        if row.get("trial") is not None and row.get("strategy") == "finetune" and row.get("status") == "ok":
            found.setdefault((row["variant"], row.get("train_size")), []).append(row)
    return {key: sorted(rows, key=lambda r: r["trial"]) for key, rows in found.items()}


def replay(trials: list[dict], search: SearchConfig) -> dict:
    """The search as it would have run with ``search``'s pruner: each trial's pruned epoch (or None)."""
    metric = trials[0]["metric"]  # (every metric a run is trained by is higher-is-better)
    seen: list[dict] = []
    pruned_at: list[int | None] = []
    for row in trials:
        stop = pruner(search, [Row.from_json(r) for r in seen], metric)
        curve = [e[f"dev_{metric}"] for e in row["history"]]
        at = next((epoch for epoch, score in enumerate(curve[:-1], 1) if stop and stop(epoch, score)), None)
        pruned_at.append(at)
        seen.append(row if at is None else row | {"history": row["history"][:at], "pruned_epoch": at})
    before = max(trials, key=lambda r: r["dev"][metric])
    after = max([r for r, at in zip(trials, pruned_at) if at is None], key=lambda r: r["dev"][metric])
    saved = sum(r["seconds"]["training"] * (1 - at / len(r["history"])) for r, at in zip(trials, pruned_at) if at)
    return {
        "metric": metric,
        "trials": len(trials),
        "curves": [[round(e[f"dev_{metric}"], 4) for e in r["history"]] for r in trials],
        "params": [r["params"] for r in trials],
        "pruned_epochs": pruned_at,
        "chosen_without": before["params"],
        "chosen_with": after["params"],
        "same_choice": before["params"] == after["params"],
        "training_seconds": sum(r["seconds"]["training"] for r in trials),
        "saved_seconds": saved,
    }


def table(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["run"] == rows[-1]["run"]]  # the last replay
    lines = [
        "| results | train | trials' dev curves | pruned after epoch | same choice | training s | saved s (est.) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        curves = "; ".join(" ".join(f"{v:.3f}" for v in c) for c in r["curves"])
        pruned = ", ".join("-" if at is None else str(at) for at in r["pruned_epochs"])
        same = "yes" if r["same_choice"] else f"no: {r['chosen_with']}"
        lines.append(
            f"| {r['source']} | {r['train_size']} | {curves} | {pruned} | {same} "
            f"| {r['training_seconds']:,.0f} | {r['saved_seconds']:,.0f} |"
        )
    total, saved = sum(r["training_seconds"] for r in rows), sum(r["saved_seconds"] for r in rows)
    lines.append(f"\nSaved about {saved:,.0f} of {total:,.0f} training seconds ({saved / max(total, 1):.0%}).")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--table", action="store_true", help="print the table from --out and stop")
    parser.add_argument("--prune-startup", type=int, default=SearchConfig().prune_startup)
    parser.add_argument("--prune-warmup", type=int, default=SearchConfig().prune_warmup)
    args = parser.parse_args()
    if args.table:
        print(table(args.out))
        return
    search = SearchConfig(prune=True, prune_startup=args.prune_startup, prune_warmup=args.prune_warmup)
    run = datetime.datetime.now().isoformat(timespec="seconds")
    common = {"benchmark": "pruning", "run": run, "prune_startup": search.prune_startup}
    common |= {"prune_warmup": search.prune_warmup, **cpu()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for source in SOURCES:
        for (variant, size), trials in searches(HERE / "results" / source).items():
            row = common | {"source": source, "variant": variant, "train_size": size, **replay(trials, search)}
            append_jsonl(args.out, row)
    print(table(args.out))


if __name__ == "__main__":
    main()
