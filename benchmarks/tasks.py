"""Task and baseline benchmarks: one `lmtransfer train` per variant, each a JSONL row.

Two suites (the data must be in ../shared/data):
- `tasks` (issue 4): CoNLL-2003 NER, MRPC, RTE and SQuAD v1.1 with MiniLM, fine-tuned and feature-based
  (about 90 minutes on a 2-core CPU), rows in benchmarks/results/tasks.jsonl;
- `baselines` (issue 5): SST-2 with bag-of-words counts / TF-IDF + logistic regression, mean GloVe-50d +
  logistic regression, GloVe-50d + BiLSTM, a BiLSTM on word vectors trained from scratch; CoNLL-2003
  with a GloVe-50d BiLSTM-CRF (about 60 minutes on a shared CPU), rows in benchmarks/results/baselines.jsonl.

    .venv/bin/python benchmarks/tasks.py                       # every variant of the tasks suite, in order
    .venv/bin/python benchmarks/tasks.py --suite baselines     # the baselines suite
    .venv/bin/python benchmarks/tasks.py --only conll-feature  # some variants (of any suite)
    .venv/bin/python benchmarks/tasks.py --smoke               # each variant on 40 examples (a wiring check)
    .venv/bin/python benchmarks/tasks.py --table [--suite S]   # the Markdown table from the results file

Each variant is one `lmtransfer train` of a shipped config with the overrides listed below, run in its
own process; its dev / test metrics and costs become one JSONL row.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
from pathlib import Path

from _bench import cpu

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT.parent / "shared" / "data"

SQUAD_SUBSET = ["data.max_train_examples=4000", "data.max_eval_examples=2000"]
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "conll-finetune": ("conll2003.yaml", []),
    "conll-feature": (
        "conll2003.yaml",
        [
            "strategy=feature",
            "features.layers=last4",
            "features.combine=concat",
            "head.type=bilstm-crf",
            "head.lstm_hidden=256",
            "head.dropout=0.25",
            "train.lr=1e-3",
            "train.epochs=12",
            "train.warmup_ratio=0",
        ],
    ),
    "mrpc-finetune": ("mrpc.yaml", []),
    "mrpc-feature": ("mrpc.yaml", ["strategy=feature", "head.type=mlp", "train.lr=1e-3", "train.epochs=30"]),
    "rte-finetune": ("rte.yaml", []),
    "rte-feature": ("rte.yaml", ["strategy=feature", "head.type=mlp", "train.lr=1e-3", "train.epochs=30"]),
    "squad-finetune": ("squad.yaml", [*SQUAD_SUBSET, "train.epochs=1"]),
    "squad-feature": (
        "squad.yaml",
        [
            *SQUAD_SUBSET,
            "strategy=feature",
            "features.layers=last4",
            "head.type=bilstm",
            "head.lstm_hidden=128",
            "train.lr=1e-3",
            "train.epochs=6",
            "train.warmup_ratio=0",
        ],
    ),
}
SST2 = "sst2-features.yaml"
GLOVE = ["encoder.model=glove-6b-50d"]
# the recurrent SST-2 baselines train on a fixed 20,000-sentence subset for 2 epochs: a full-data run
# takes hours on a shared 2-core CPU
RECURRENT = [
    "head.type=bilstm",
    "head.lstm_hidden=128",
    "head.dropout=0.3",
    "train.epochs=2",
    "train.warmup_ratio=0",
    "data.max_train_examples=20000",
]
BASELINES: dict[str, tuple[str, list[str]]] = {
    "sst2-counts-lr": (SST2, ["encoder.model=counts"]),
    "sst2-counts-bigrams-lr": (SST2, ["encoder.model=counts", "encoder.ngrams=2"]),
    "sst2-tfidf-lr": (SST2, ["encoder.model=tfidf"]),
    "sst2-tfidf-bigrams-lr": (SST2, ["encoder.model=tfidf", "encoder.ngrams=2"]),
    "sst2-glove-mean-lr": (SST2, [*GLOVE, "features.pooling=mean", "head.type=linear", "train.epochs=10"]),
    "sst2-glove-bilstm": (SST2, [*GLOVE, *RECURRENT, "train.lr=2e-3"]),
    "sst2-scratch-bilstm": (SST2, ["encoder.model=scratch", "encoder.dim=100", *RECURRENT, "train.lr=1e-3"]),
    # the same two on all 67,349 training sentences, for when the machine is free (about 15 minutes each)
    "sst2-glove-bilstm-full": (SST2, [*GLOVE, *RECURRENT, "train.lr=2e-3", "data.max_train_examples=null"]),
    "sst2-scratch-bilstm-full": (
        SST2,
        ["encoder.model=scratch", "encoder.dim=100", *RECURRENT, "train.lr=1e-3", "data.max_train_examples=null"],
    ),
    "conll-glove-bilstm-crf": (
        "conll2003.yaml",
        [
            *GLOVE,
            "strategy=feature",
            "head.type=bilstm-crf",
            "head.lstm_hidden=128",
            "head.dropout=0.3",
            "train.lr=2e-3",
            "train.epochs=8",
            "train.warmup_ratio=0",
        ],
    ),
}
SUITES = {
    "tasks": (VARIANTS, HERE / "results" / "tasks.jsonl"),
    "baselines": (BASELINES, HERE / "results" / "baselines.jsonl"),
}
ALL = VARIANTS | BASELINES
SMOKE = ["data.max_train_examples=40", "data.max_eval_examples=40", "train.epochs=1"]


def child(name: str, overrides: list[str]) -> dict:
    """Inside the child process: train one variant and report it."""
    from lmtransfer import load_config, train

    config_file, extra = ALL[name]
    config = load_config(ROOT / "configs" / config_file, [*extra, *overrides])
    result = train(config, progress=True)
    keep = lambda m: {k: v for k, v in m.items() if not isinstance(v, dict | list)}  # noqa: E731
    costs = result.metrics["costs"]
    return {
        "variant": name,
        "config": f"configs/{config_file}",
        "overrides": [*extra, *overrides],
        "dev": keep(result.metrics["dev"]),
        "test": keep(result.metrics["test"]) if "test" in result.metrics else None,
        "per_type_dev": result.metrics["dev"].get("per_type"),
        "best_epoch": result.metrics.get("best_epoch"),  # a scikit-learn baseline has no epochs
        "history": result.metrics.get("history"),
        "sizes": result.metrics["sizes"],
        "costs": {k: v for k, v in costs.items() if not isinstance(v, dict)},
    }


def results_file(name: str) -> Path:
    return next(out for variants, out in SUITES.values() if name in variants)


def run(names: list[str], out: Path | None, smoke: bool) -> None:
    """Each variant in its own process; its row goes to ``out`` or its suite's results file."""
    for name in names:
        scratch = ROOT / "benchmarks" / "results" / "runs" / name
        overrides = [f"output_dir={scratch}", f"cache_dir={ROOT / 'benchmarks' / 'results' / 'cache'}"]
        overrides += SMOKE if smoke else []
        command = [sys.executable, __file__, "--child", name, *(f"--set={o}" for o in overrides)]
        print(f"== {name}", flush=True)
        done = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        if done.returncode != 0:
            print(f"{name} failed (exit {done.returncode})", flush=True)
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        row.update(date=datetime.date.today().isoformat(), machine=platform.processor() or platform.machine(), **cpu())
        row["smoke"] = smoke
        print(json.dumps({k: row[k] for k in ("variant", "dev", "test")}), flush=True)
        if not smoke:
            target = out or results_file(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")


def table(out: Path) -> str:
    rows = {}
    for line in out.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        rows[row["variant"]] = row  # the last row of each variant
    lines = [
        "| variant | train / dev / test | dev | test | best epoch | train s | train tok/s | trainable params | cache |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        c = row["costs"]
        metrics = lambda m: ", ".join(  # noqa: E731
            f"{k} {v:.2f}" if v > 1.5 else f"{k} {v:.4f}"
            for k, v in (m or {}).items()
            if k in ("f1", "accuracy", "exact_match", "precision", "recall")
        )
        sizes = " / ".join(str(row["sizes"].get(n, "-")) for n in ("train", "dev", "test"))
        speed = f"{c['train_tokens_per_second']:,.0f}" if c.get("train_tokens_per_second") else "-"
        cache = f"{c['cache_bytes'] / 2**20:,.0f} MiB" if c.get("cache_bytes") else "-"
        lines.append(
            f"| {name} | {sizes} | {metrics(row['dev'])} | {metrics(row['test'])} | {row['best_epoch'] or '-'} | "
            f"{c['train_seconds']:,.0f} | {speed} | {c['trainable_parameters']:,} | {cache} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=sorted(SUITES), default="tasks", help="which variants (default: tasks)")
    parser.add_argument("--only", nargs="*", choices=sorted(ALL), help="variants to run (default: the suite's)")
    parser.add_argument("--out", type=Path, help="results file (default: the suite's)")
    parser.add_argument("--table", action="store_true", help="print the table from --out and stop")
    parser.add_argument("--smoke", action="store_true", help="40 examples per split, 1 epoch, no results row")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.overrides)))
        return
    variants, out = SUITES[args.suite]
    if args.table:
        print(table(args.out or out))
        return
    if not DATA.is_dir():
        sys.exit(f"skipped: the benchmark data is not at {DATA} (see ../shared/data/README.md)")
    run(args.only or list(variants), args.out, args.smoke)


if __name__ == "__main__":
    main()
