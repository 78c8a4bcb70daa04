"""A comparison on Ray against the local executor (issue 31): the same tiny-model comparison (a randomly
initialised 2-layer BERT, hidden size 32; 4 feature-based variants x 2 seeds = 8 feature rows, and a
fine-tuning variant whose search tries 4 learning rates, then its 2 seeds' rows) run by the local executor
(one job after another, each row and fine-tuning trial in a child process, torch on every core) and on a
local Ray instance of 2 CPUs (2 workers, 1 thread each). Each executor in its own process, with its own
cache and folder, so that both extract.

    .venv/bin/python benchmarks/ray_compare.py          # ~10 minutes on 2 cores; rows to results/ray_compare.jsonl
    .venv/bin/python benchmarks/ray_compare.py --toy    # one feature row each: a check that it runs (a minute)
    .venv/bin/python benchmarks/ray_compare.py --only ray --workers 4
    .venv/bin/python benchmarks/ray_compare.py --table

Each row: the comparison's wall time; on Ray also what starting Ray took (``ray.init``) and the check that
its workers see the comparison's files; every job's own seconds (``child_seconds``: what it took where it
ran), so that the table can say what the longest job bounds a speed-up to. Needs the ray extra
(pip install -e '.[ray]') and the test fixtures' tiny BERT (tests/conftest.py).
"""

from __future__ import annotations

import datetime
import sys
import tempfile
import time
from pathlib import Path

from _bench import cpu, handled, parser, run_steps

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "ray_compare.jsonl"
STEPS = ["local", "ray"]
VARIANTS = (
    "compare.variants=[{name: mix-all}, {name: last, set: {features.layers: last}},"
    " {name: first, set: {features.layers: [1]}}, {name: concat, set: {features.layers: [1, 2], features.combine:"
    " concat}}, {name: ft, set: {strategy: finetune, features.layers: last, train.head_lr: 0.05},"
    " search: {trials: 4, space: {train.lr: [1.0e-4, 3.0e-4, 1.0e-3, 3.0e-3]}}}]"
)


def settings(work: Path, toy: bool, examples: int) -> list[str]:
    """The comparison's overrides: the tiny BERT and sentences of the test fixtures, written under ``work``."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from conftest import SENTENCES, build_tiny_bert, write_csv

    labels = ["pos", "neg", "pos", "neg", "biz", "biz", "pos", "biz", "neg", "pos", "neg", "biz"]
    rows = list(zip(SENTENCES, labels))
    files = {
        "train": write_csv(work / "train.csv", (rows * (examples // len(rows) + 1))[:examples]),
        "dev": write_csv(work / "dev.csv", rows * 5),
        "test": write_csv(work / "test.csv", rows * 5),
    }
    model = build_tiny_bert(work / "tiny-bert")
    common = [f"encoder.model={model}", "encoder.max_length=32", *(f"data.{k}={v}" for k, v in files.items())]
    common += ["train.epochs=2", "train.min_steps=0", "compare.extensions=0", "compare.inference_examples=50"]
    common += [f"cache_dir={work / 'cache'}", f"compare.output_dir={work / 'cmp'}"]
    return common + (["compare.seeds=[1]"] if toy else ["compare.seeds=[1, 2]", VARIANTS])


def child(step: str, toy: bool, workers: int, examples: int) -> dict:
    import torch

    from lmtransfer import compare, load_config
    from lmtransfer.compare.executors import executor_for
    from lmtransfer.compare.results import read_rows

    with tempfile.TemporaryDirectory(prefix="ray-compare-") as folder:
        work = Path(folder)
        config = load_config(None, [*settings(work, toy, examples), f"compare.executor={step}"])
        timing: dict = {}
        if step == "ray":
            import ray

            began = time.perf_counter()
            ray.init(num_cpus=workers, include_dashboard=False, logging_level="WARNING")
            timing["ray_start_seconds"] = time.perf_counter() - began
            began = time.perf_counter()
            with executor_for(config):  # (the check that every node sees the files, alone)
                timing["probe_seconds"] = time.perf_counter() - began
        began = time.perf_counter()
        result = compare(config, progress=False)
        timing["wall_seconds"] = time.perf_counter() - began
        rows = read_rows(result.directory / "results.jsonl")
    jobs = [
        {"variant": r.variant, "seed": r.seed, "trial": r.trial, "strategy": r.strategy, "seconds": r.child_seconds}
        for r in rows
    ]
    return {
        "executor": step,
        "workers": workers if step == "ray" else 1,
        "threads_per_job": 1 if step == "ray" else torch.get_num_threads(),
        "toy": toy,
        "train_examples": examples,
        "rows": sum(r.trial is None for r in rows),
        "trials": sum(r.trial is not None for r in rows),
        "failed": sum(not r.ok for r in rows),
        **timing,
        "jobs": jobs,
    }


def table(out: Path) -> str:
    import json

    found = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    lines = [
        "| date | executor | workers | rows + trials | wall s | Ray start s | files check s | jobs' own s (sum) "
        "| longest job s | wall against local |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    local = {(r["date"], r["toy"]): r["wall_seconds"] for r in found if r.get("executor") == "local"}
    for r in (r for r in found if "error" not in r):
        seconds = [j["seconds"] or 0.0 for j in r["jobs"]]
        base = local.get((r["date"], r["toy"]))
        ratio = f"{base / r['wall_seconds']:.2f}x" if base and r["executor"] != "local" else "-"
        lines.append(
            f"| {r['date']}{' (toy)' if r['toy'] else ''} | {r['executor']} | {r['workers']} | {r['rows']} + "
            f"{r['trials']} | {r['wall_seconds']:.0f} | {r.get('ray_start_seconds', 0):.1f} | "
            f"{r.get('probe_seconds', 0):.1f} | {sum(seconds):.0f} | {max(seconds, default=0):.0f} | {ratio} |"
        )
    return "\n".join(lines)


def main() -> None:
    args = parser(__doc__, HERE, OUT, "executors: local, ray")
    args.add_argument("--toy", action="store_true", help="one feature-based row, no search: a quick check")
    args.add_argument("--workers", type=int, default=2, help="the Ray instance's CPUs (each job takes one)")
    args.add_argument("--examples", type=int, default=480, help="training examples (the sentences repeated)")
    args = args.parse_args()
    if handled(args, lambda: child(args.child, args.toy, args.workers, args.examples), table, needed=()):
        return
    flags = [*(["--toy"] if args.toy else []), "--workers", str(args.workers), "--examples", str(args.examples)]
    common = {"benchmark": "ray_compare", "date": datetime.date.today().isoformat(), "hardware": cpu()}
    failed = run_steps(__file__, args.only or STEPS, args.data, args.out, common, flags)
    print(table(args.out))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
