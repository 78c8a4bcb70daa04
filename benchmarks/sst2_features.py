"""SST-2 feature-based benchmark (issue 2): extraction speed, memory and cache size; linear and MLP heads.

How to run (about 25 minutes on a 2-core CPU; the data must be in ../shared/data/sst2):

    .venv/bin/python benchmarks/sst2_features.py            # writes benchmarks/results/sst2_features.jsonl
    .venv/bin/python benchmarks/sst2_features.py --table    # prints the Markdown table from that file

Each step runs in its own process, so the peak RSS reported is that step's alone. The extraction step
is run on a 10,000-sentence subset and on the full 67,349-sentence train set, to show that peak memory
does not grow with the data. All 7 hidden states of MiniLM (embeddings + 6 blocks), mean-pooled per
sentence, float16.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from _bench import cpu, handled

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "sst2"
OUT = HERE / "results" / "sst2_features.jsonl"


def base_overrides(data: Path) -> list[str]:
    return [
        f"data.train={data / 'train.tsv'}",
        f"data.dev={data / 'dev.tsv'}",
        f"data.test={data / 'test_labeled.tsv'}",
        "data.text_column=sentence",
        "encoder.model=minilm",
        "encoder.max_length=128",
        "features.layers=all",
        "features.pooling=mean",
        "features.dtype=float16",
    ]


def step(kind: str, overrides: list[str], cache_dir: str) -> dict:
    """Run inside a child process: one extraction or one training, reported as a dict."""
    from lmtransfer import extract, load_config, train
    from lmtransfer.core.devices import peak_rss_bytes

    config = load_config(None, [*overrides, f"cache_dir={cache_dir}"])
    began = time.perf_counter()
    if kind == "extract":
        result = extract(config, ("train",), progress=True)["train"]
        return {
            "examples": len(result.cache),
            "tokens": result.tokens,
            "seconds": result.seconds,
            "tokens_per_second": result.tokens_per_second,
            "texts_per_second": result.examples / result.seconds,
            "cache_bytes": result.cache.nbytes,
            "peak_rss_bytes": peak_rss_bytes(),
        }
    run = train(config, progress=False)
    m = run.metrics
    return {
        "dev_accuracy": m["dev"]["accuracy"],
        "dev_macro_f1": m["dev"]["macro_f1"],
        "test_accuracy": m["test"]["accuracy"],
        "best_epoch": m["best_epoch"],
        "train_seconds": m["costs"]["train_seconds"],
        "wall_seconds": time.perf_counter() - began,
        "peak_rss_bytes": peak_rss_bytes(),
        "layer_weights": json.loads((run.directory / "layer_weights.json").read_text()),
    }


def child(kind: str, overrides: list[str], cache_dir: str) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--cache-dir", cache_dir, "--", *overrides]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def record(row: dict, out: Path) -> None:
    from lmtransfer.core.atomic import append_jsonl

    append_jsonl(out, row)
    print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--cache-dir", default=str(HERE / "results" / "cache"))
    parser.add_argument("--table", action="store_true", help="print the Markdown table from --out and stop")
    parser.add_argument("--child", choices=["extract", "train"], help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if handled(args, lambda: step(args.child, args.overrides, args.cache_dir), table):
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    common = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()} {platform.processor()}",
        "model": "minilm",
        "seed": 13,
        **cpu(),
    }
    base = base_overrides(args.data)
    for subset in (10_000, None):
        overrides = base + ([f"data.max_train_examples={subset}"] if subset else [])
        row = child("extract", overrides, args.cache_dir)
        record(
            {
                "benchmark": "sst2_extract",
                **common,
                "train_subset": subset or "all",
                **row,
                "config_hash": _hash(overrides),
            },
            args.out,
        )
    for head in ("linear", "mlp"):
        overrides = [*base, f"head.type={head}", f"output_dir={HERE / 'results' / ('sst2-' + head)}"]
        row = child("train", overrides, args.cache_dir)
        record({"benchmark": "sst2_train", **common, "head": head, **row, "config_hash": _hash(overrides)}, args.out)


def _hash(overrides: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(overrides)).encode()).hexdigest()[:12]


def table(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    lines = [
        "| step | examples | tokens/s | texts/s | seconds | peak RSS | cache on disk |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in (r for r in rows if r["benchmark"] == "sst2_extract"):
        lines.append(
            f"| extract ({r['train_subset']}) | {r['examples']:,} | {r['tokens_per_second']:,.0f} | "
            f"{r['texts_per_second']:,.0f} | {r['seconds']:.0f} | {r['peak_rss_bytes'] / 2**20:,.0f} MiB | "
            f"{r['cache_bytes'] / 2**20:,.1f} MiB |"
        )
    lines += [
        "",
        "| head | dev accuracy | dev macro-F1 | test accuracy | best epoch | train seconds |",
        "|---|---|---|---|---|---|",
    ]
    for r in (r for r in rows if r["benchmark"] == "sst2_train"):
        lines.append(
            f"| {r['head']} | {r['dev_accuracy']:.4f} | {r['dev_macro_f1']:.4f} | {r['test_accuracy']:.4f} | "
            f"{r['best_epoch']} | {r['train_seconds']:.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
