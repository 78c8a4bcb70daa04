"""How many optimizer steps does each way need at the smallest training sizes? The measurement behind
``train.min_steps``'s defaults (``core/choices.STRATEGY_DEFAULTS``).

Each step trains one run of a shipped comparison's variant at its smallest training size with a budget of
exactly B optimizer steps (``train.epochs=1``, ``train.min_steps=B``: epochs are raised to hold B steps and
early stopping cannot end it sooner), dev scored by the default rule (``training.convergence``), and
records its best dev metric, the step of that best, and whether the run converged by the default rule.

    .venv/bin/python benchmarks/budgets.py                       # every step; rows to results/budgets.jsonl
    .venv/bin/python benchmarks/budgets.py --only demo:finetune:150 sst2:features:300
    .venv/bin/python benchmarks/budgets.py --table

A step is DATA:VARIANT:B: DATA one of demo (BBC News, 50 articles), sst2 (100 sentences), conll (200
sentences); VARIANT the comparison's variant name. SST-2 and CoNLL-2003 need ../shared/data.
"""

from __future__ import annotations

import datetime
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _bench import cpu, handled, parser, run_steps

HERE = Path(__file__).resolve().parent
CONFIGS = HERE.parent / "configs"
OUT = HERE / "results" / "budgets.jsonl"
# data set -> (shipped config, smallest size, the variants: name -> the lr the run takes)
SETS = {
    "demo": ("demo.yaml", 50, {"mix-all": 5e-3, "finetune": 1e-4}),
    "sst2": ("sst2-sizes.yaml", 100, {"features": 5e-3, "finetune": 1e-4}),
    "conll": ("conll2003-sizes.yaml", 200, {"features": 2e-3, "finetune": 1e-4}),
}
BUDGETS = {"finetune": [75, 150, 300], "feature": [150, 300, 600, 1200]}
STEPS = [
    f"{name}:{variant}:{b}"
    for name, (_, _, variants) in SETS.items()
    for variant in variants
    for b in BUDGETS["finetune" if variant == "finetune" else "feature"]
]


def child(step: str, data: Path) -> dict:
    from lmtransfer import api, load_config
    from lmtransfer.config.build import changed
    from lmtransfer.config.variants import jobs

    name, variant, budget = step.split(":")
    file, size, lrs = SETS[name]
    config = load_config(CONFIGS / file, [f"compare.train_sizes=[{size}]", "compare.seeds=[13]"])
    job = next(j for j in jobs(config) if j.variant == variant)
    out = Path(tempfile.mkdtemp(prefix="budget-"))
    try:
        updates = {"train.epochs": 1, "train.min_steps": int(budget), "train.lr": lrs[variant], "output_dir": str(out)}
        for key in ("data.train", "data.dev", "data.test"):  # the shipped configs name ../shared/data
            value = getattr(job.config.data, key.split(".")[1])
            if value:
                updates[key] = str((HERE.parent / value).resolve())
        run = changed(job.config, updates)
        began = time.perf_counter()
        result = api.train(run, progress=False)
        metric = run.train.metric
        c = result.convergence
        return {
            "data": name,
            "variant": variant,
            "strategy": run.strategy,
            "train_size": size,
            "budget_steps": int(budget),
            "lr": lrs[variant],
            "metric": metric,
            "dev_best": result.dev[metric],
            "test": result.test[metric],
            "curve": [[e["step"], e[f"dev_{metric}"]] for e in result.history],
            "converged": c.converged,
            "best_step": c.best_step,
            "reason": c.reason,
            "seconds": time.perf_counter() - began,
            "train_seconds": result.costs.train_seconds,
        }
    finally:
        shutil.rmtree(out, ignore_errors=True)


def table(out: Path) -> str:
    import json

    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    lines = ["| data | variant | train | budget (steps) | best dev | best at step | converged | seconds |"]
    lines.append("|---|---|---|---|---|---|---|---|")
    for r in sorted((r for r in rows if "error" not in r), key=lambda r: (r["data"], r["variant"], r["budget_steps"])):
        lines.append(
            f"| {r['data']} | {r['variant']} | {r['train_size']} | {r['budget_steps']} | {100 * r['dev_best']:.2f} | "
            f"{r['best_step']} | {'yes' if r['converged'] else 'no'} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    args = parser(__doc__, HERE.parent.parent / "shared" / "data", OUT, "steps DATA:VARIANT:B").parse_args()
    if handled(args, lambda: child(args.child, args.data), table, needed=()):
        return
    steps = args.only or STEPS
    common = {"date": datetime.date.today().isoformat(), "hardware": cpu()}
    failed = run_steps(__file__, steps, args.data, args.out, common)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
