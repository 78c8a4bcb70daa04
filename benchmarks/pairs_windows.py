"""Pairs read apart and long texts read whole (issue 17), MiniLM (all-MiniLM-L6-v2), each case in its own process.

    .venv/bin/python benchmarks/pairs_windows.py     # ~2 hours on 2 cores; rows to results/pairs_windows.jsonl
    .venv/bin/python benchmarks/pairs_windows.py --only mrpc-feature stsb-cosine
    .venv/bin/python benchmarks/pairs_windows.py --table

- MRPC and RTE (dev): feature-based ``joint`` against ``separate`` (linear and MLP heads on a scalar mix
  of all 7 layers), fine-tuned ``joint`` against ``separate`` (3 epochs, batch 32, lr 1e-4, warmup 0.1).
- STS-B (dev and test): the untrained cosine of the two texts' mean-pooled last-layer embeddings, then
  feature-based joint + MLP, separate + linear / MLP (on the last layer, and the MLP on all 7), separate
  + the cosine head (all layers, and the last alone), and fine-tuned joint (linear head) and separate (the
  cosine head on the last layer: a bi-encoder), 3 epochs as above.
- BBC News whole articles (all 2,225; 80/10/10): ``truncate`` against ``windows`` at 64, 128 and 256 tokens
  (stride a quarter of the length), feature-based (mix of 7 layers, linear head) on all of train and
  fine-tuned on the demo's 500 training articles (1 epoch, as the demo's fine-tuning row).

Cases already in the results file are not run again. Needs ../shared/data (MRPC, RTE, STS-B).
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _bench import cpu

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
OUT = HERE / "results" / "pairs_windows.jsonl"
FINETUNE = ["strategy=finetune", "train.epochs=3", "train.batch_size=32", "train.lr=1e-4", "train.warmup_ratio=0.1"]
FEATURE = ["strategy=feature", "train.lr=1e-3", "train.epochs=30"]


def glue(task: str, name: str, max_length: int) -> list[str]:
    files = [f"data.train={DATA / name / 'train.tsv'}", f"data.dev={DATA / name / 'dev.tsv'}"]
    if name == "stsb":
        files.append(f"data.test={DATA / name / 'test.tsv'}")
    return [f"task={task}", f"data.glue={name}", *files, f"encoder.max_length={max_length}", "features.layers=all"]


MRPC, RTE, STSB = (
    glue("classification", "mrpc", 128),
    glue("classification", "rte", 256),
    glue("regression", "stsb", 128),
)
CASES: dict[str, list[str]] = {}
for data, name in ((MRPC, "mrpc"), (RTE, "rte")):
    for pair in ("joint", "separate"):
        for head in ("linear", "mlp"):
            CASES[f"{name}-feature-{pair}-{head}"] = [*data, *FEATURE, f"features.pair={pair}", f"head.type={head}"]
CASES["stsb-untrained-cosine"] = [*STSB]  # computed, not trained (see untrained_cosine)
CASES["stsb-feature-joint-mlp"] = [*STSB, *FEATURE, "features.pair=joint", "head.type=mlp"]
SEPARATE = [*STSB, *FEATURE, "features.pair=separate"]
CASES["stsb-feature-separate-linear"] = [*SEPARATE, "head.type=linear", "features.layers=last"]
CASES["stsb-feature-separate-mlp"] = [*SEPARATE, "head.type=mlp", "features.layers=last"]
CASES["stsb-feature-separate-mlp-all"] = [*SEPARATE, "head.type=mlp"]
CASES["stsb-feature-separate-cosine"] = [*SEPARATE, "head.type=cosine"]
CASES["stsb-feature-separate-cosine-last"] = [*SEPARATE, "head.type=cosine", "features.layers=last"]
for length in (64, 128, 256):
    bbc = ["data.demo=bbc", f"encoder.max_length={length}", f"encoder.stride={length // 4}", "train.metric=accuracy"]
    for reading in ("truncate", "windows"):
        CASES[f"bbc-feature-{reading}-{length}"] = [
            *bbc,
            *FEATURE[:1],
            "train.epochs=20",
            f"encoder.long_text={reading}",
        ]
for data, name in ((MRPC, "mrpc"), (RTE, "rte"), (STSB, "stsb")):
    for pair in ("joint", "separate"):
        CASES[f"{name}-finetune-{pair}"] = [*data, *FINETUNE, f"features.pair={pair}", "head.type=linear"]
# a bi-encoder for similarity, as sentence-transformers trains one: the cosine head on the last layer
CASES["stsb-finetune-separate"] = [
    *STSB,
    *FINETUNE,
    "features.pair=separate",
    "head.type=cosine",
    "features.layers=last",
]
for length in (64, 128, 256):
    bbc = [
        "data.demo=bbc",
        "data.max_train_examples=500",
        f"encoder.max_length={length}",
        f"encoder.stride={length // 4}",
    ]
    demo = ["strategy=finetune", "features.layers=last", "train.epochs=1", "train.batch_size=16", "train.lr=1e-4"]
    demo += ["train.head_lr=5e-3", "train.warmup_ratio=0.1", "encoder.max_windows=8"]
    for reading in ("truncate", "windows"):
        CASES[f"bbc-finetune-{reading}-{length}"] = [*bbc, *demo, f"encoder.long_text={reading}"]


def scalars(metrics: dict | None) -> dict | None:
    return None if metrics is None else {k: v for k, v in metrics.items() if isinstance(v, int | float)}


def untrained_cosine(overrides: list[str], work: Path) -> dict:
    """Pearson / Spearman of cos(u, v), u and v the two texts' mean-pooled last-layer MiniLM embeddings."""
    import numpy as np

    from lmtransfer import load_config
    from lmtransfer.features.extraction import extract
    from lmtransfer.features.pooling import FeatureSpec
    from lmtransfer.tasks.metrics import regression_metrics
    from lmtransfer.tasks.table import read_task_data
    from lmtransfer.training.setup import config_encoder

    config = load_config(None, [*overrides, "features.pair=separate", f"cache_dir={work}"])
    data = read_task_data(config)
    encoder = config_encoder(data.config)
    out = {}
    for split in ("dev", "test"):
        prepared = data.task.prepare(data.splits[split], encoder.tokenizer, [])
        cache = extract(encoder, prepared.examples, FeatureSpec((6,), max_length=128), work, progress=False).cache
        vectors = cache.gather_pooled(np.arange(len(cache)))[:, 0]  # (texts, H)
        u, v = vectors[prepared.sides[:, 0]], vectors[prepared.sides[:, 1]]
        cos = (u * v).sum(1) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1))
        out[split] = regression_metrics(prepared.targets, cos)
    return {"dev": scalars(out["dev"]), "test": scalars(out["test"])}


def child(case: str, work: Path) -> dict:
    import torch

    torch.set_num_threads(2)
    if case == "stsb-untrained-cosine":
        return untrained_cosine(CASES[case], work)
    from lmtransfer import load_config, train

    config = load_config(None, [*CASES[case], f"cache_dir={work / 'cache'}", f"output_dir={work / case}"])
    result = train(config, progress=False)
    c = result.costs
    return {
        "dev": scalars(result.dev),
        "test": scalars(result.test),
        "pair": result.config.features.pair,
        "long_text": result.config.encoder.long_text,
        "extract_seconds": c.extract_seconds,
        "cache_bytes": c.cache_bytes,
        "train_seconds": c.train_seconds,
        "wall_seconds": c.wall_seconds,
        "best_epoch": result.best_epoch,
        "sizes": result.sizes,
    }


def done(out: Path) -> set[str]:
    return (
        {json.loads(line)["case"] for line in out.read_text().splitlines() if line.strip()} if out.is_file() else set()
    )


def run(cases: list[str], out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            if case in done(out):
                continue
            command = [sys.executable, __file__, "--child", case, "--work", tmp]
            finished = subprocess.run(command, capture_output=True, text=True, check=False)
            if finished.returncode != 0:
                print(f"{case}: FAILED\n{finished.stderr[-3000:]}", flush=True)
                continue
            row = {"case": case, **json.loads(finished.stdout.strip().splitlines()[-1]), "overrides": CASES[case]}
            row |= {"date": datetime.date.today().isoformat(), **cpu()}
            out.parent.mkdir(parents=True, exist_ok=True)
            with open(out, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")
            print(case, json.dumps({k: row[k] for k in ("dev", "test")}), flush=True)


def table(out: Path) -> str:
    rows = {r["case"]: r for r in (json.loads(line) for line in out.read_text().splitlines() if line.strip())}
    lines = ["| case | dev | test | extraction s | cache | training s | wall s |", "|---|---|---|---|---|---|---|"]
    show = lambda m: ", ".join(f"{k} {v:.4f}" for k, v in (m or {}).items() if k in KEYS) or "-"  # noqa: E731
    for case in CASES:
        if case in rows:
            r = rows[case]
            extract = f"{r['extract_seconds']:.0f}" if r.get("extract_seconds") else "-"
            cache = f"{r['cache_bytes'] / 2**20:.1f} MiB" if r.get("cache_bytes") else "-"
            train = f"{r['train_seconds']:.0f}" if r.get("train_seconds") is not None else "-"
            wall = f"{r['wall_seconds']:.0f}" if r.get("wall_seconds") is not None else "-"
            lines.append(
                f"| {case} | {show(r.get('dev'))} | {show(r.get('test'))} | {extract} | {cache} | {train} | {wall} |"
            )
    last = next(iter(rows.values()), {})
    return (
        "\n".join(lines) + f"\n\nCPU: {last.get('cpu')} ({', '.join(last.get('isa', []))}), {last.get('cores')} cores"
    )


KEYS = ("accuracy", "f1", "pearson", "spearman")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--only", nargs="*", help="case names or prefixes (default: all)")
    parser.add_argument("--table", action="store_true", help="print the table from --out and stop")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.work)))
        return
    if args.table:
        print(table(args.out))
        return
    if not (DATA / "mrpc" / "train.tsv").is_file():
        sys.exit(f"skipped: the benchmark data is not at {DATA} (see ../shared/data/README.md)")
    cases = [c for c in CASES if not args.only or any(c.startswith(p) for p in args.only)]
    run(cases, args.out)
    print(table(args.out))


if __name__ == "__main__":
    main()
