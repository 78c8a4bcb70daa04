"""What experiment tracking costs (issue 20): the demo's fine-tuning row (configs/demo.yaml, variant
finetune, seed 13: MiniLM on 500 BBC News articles, one epoch) trained with no tracker, with TensorBoard,
with MLflow (a local file store) and with both, each in its own process, the cases interleaved and
repeated.

    .venv/bin/python benchmarks/tracking.py          # ~8 minutes on 2 cores; rows to benchmarks/results/tracking.jsonl
    .venv/bin/python benchmarks/tracking.py --table

``fit`` is the training loop's own time (dev evaluation included), ``wall`` the whole run as
``lmtransfer train`` reports it (loading, tokenising, evaluating and saving besides). Run to run, these
vary by seconds on a shared 2-core machine, more than tracking costs; so the tracking calls are also
timed alone, in the same processes' way: starting the trackers with the row's config as hyperparameters,
100 logs of a training loss and learning rate, the final metrics and costs, and closing them.
Needs the tracking extra: pip install -e '.[tracking]' (or tensorboard and mlflow-skinny).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _bench import cpu

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "results" / "tracking.jsonl"
CASES = {
    "none": ([], 10),
    "tensorboard": (["tensorboard"], 10),
    "mlflow": (["mlflow"], 10),
    "both": (["tensorboard", "mlflow"], 10),
    "both-every-step": (["tensorboard", "mlflow"], 1),
}


def child(case: str, work: Path) -> dict:
    """Train the row with this case's trackers; its costs."""
    import torch

    from lmtransfer import load_config, train
    from lmtransfer.config.build import changed
    from lmtransfer.config.variants import jobs

    torch.set_num_threads(2)
    job = next(j for j in jobs(load_config(ROOT / "configs" / "demo.yaml")) if (j.variant, j.seed) == ("finetune", 13))
    trackers, every = CASES[case]
    changes = {"train.report_to": trackers, "train.logging_steps": every, "output_dir": str(work / case)}
    config = changed(job.config, {**changes, "cache_dir": str(work / "cache")})
    result = train(config, progress=False)
    c = result.costs
    return {"fit_seconds": c.loop.fit_seconds, "train_seconds": c.train_seconds, "wall_seconds": c.wall_seconds}


def calls(case: str, work: Path) -> dict:
    """The tracking calls of a run alone, timed: start (with the hyperparameters), 100 logs, final, close."""
    import time

    from lmtransfer import load_config
    from lmtransfer.config.build import changed
    from lmtransfer.config.variants import jobs
    from lmtransfer.core.devices import make_accelerator
    from lmtransfer.runs.tracking import close, hyperparameters, make_trackers

    job = next(j for j in jobs(load_config(ROOT / "configs" / "demo.yaml")) if (j.variant, j.seed) == ("finetune", 13))
    config = changed(job.config, {"output_dir": str(work / f"calls-{case}")})
    began = time.perf_counter()
    trackers = make_trackers(CASES[case][0], "calls", case, {}, work / f"calls-{case}" / "logs")
    acc = make_accelerator("no", 1, trackers)
    acc.init_trackers("calls", config=hyperparameters(config))
    started = time.perf_counter()
    for step in range(1, 101):
        acc.log({"train/loss": 1.0 / step, "train/learning_rate": 1e-4}, step=step)
    logged = time.perf_counter()
    acc.log({f"final/dev/m{i}": 0.5 for i in range(10)}, step=100)
    close(acc)
    done = time.perf_counter()
    return {
        "start_ms": 1e3 * (started - began),
        "log_ms": 1e3 * (logged - started) / 100,
        "end_ms": 1e3 * (done - logged),
    }


def run(repeats: int, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true", "MLFLOW_TRACKING_URI": Path(tmp, "mlruns").as_uri()}
        for repeat in range(repeats):
            for case in CASES:
                for kind in ("train", "calls") if CASES[case][0] else ("train",):
                    command = [sys.executable, __file__, "--child", case, "--kind", kind, "--work", tmp]
                    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
                    row = json.loads(done.stdout.strip().splitlines()[-1])
                    row |= {"kind": kind, "case": case, "repeat": repeat, "report_to": CASES[case][0]}
                    row |= {"logging_steps": CASES[case][1], "date": datetime.date.today().isoformat(), **cpu()}
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with open(out, "a", encoding="utf-8") as handle:
                        handle.write(json.dumps(row) + "\n")
                    print(
                        kind, case, repeat, {k: round(v, 2) for k, v in row.items() if isinstance(v, float)}, flush=True
                    )


def table(out: Path) -> str:
    found = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    rows = [r for r in found if r.get("kind", "train") == "train"]
    timed = [r for r in found if r.get("kind") == "calls"]

    def mean(case: str, key: str, among: list[dict] = rows) -> float:
        values = [r[key] for r in among if r["case"] == case]
        return sum(values) / len(values) if values else float("nan")

    lines = ["| trackers | logging steps | runs | fit s (mean) | wall s (mean) | fit vs none | wall vs none |"]
    lines.append("|---|---|---|---|---|---|---|")
    for case, (trackers, every) in CASES.items():
        n = sum(r["case"] == case for r in rows)
        if not n:
            continue
        fit, wall = mean(case, "fit_seconds"), mean(case, "wall_seconds")
        d_fit, d_wall = fit - mean("none", "fit_seconds"), wall - mean("none", "wall_seconds")
        name = ", ".join(trackers) or "none"
        lines.append(f"| {name} | {every} | {n} | {fit:.2f} | {wall:.2f} | {d_fit:+.2f} s | {d_wall:+.2f} s |")
    lines += ["", "| case | trackers | start ms | ms per log | final + close ms |", "|---|---|---|---|---|"]
    for case, (trackers, _) in CASES.items():
        if any(r["case"] == case for r in timed):
            start, log, end = (mean(case, k, timed) for k in ("start_ms", "log_ms", "end_ms"))
            lines.append(f"| {case} | {', '.join(trackers)} | {start:.0f} | {log:.2f} | {end:.0f} |")
    last = found[-1]
    return "\n".join(lines) + f"\n\nCPU: {last['cpu']} ({', '.join(last['isa'])}), {last['cores']} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--table", action="store_true", help="print the table from --out and stop")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--kind", default="train", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps((child if args.kind == "train" else calls)(args.child, args.work)))
    elif args.table:
        print(table(args.out))
    else:
        run(args.repeats, args.out)
        print(table(args.out))


if __name__ == "__main__":
    main()
