"""Where a comparison's work runs, and what a row records: a job (a row, a search trial, a shared extraction,
an adoption) in a child process of its own (``python -m lmtransfer.compare.worker``), so that the peak memory
it reports is its own, or in this process; what the row's features took to extract, whoever extracted them;
the one line each row prints. (``compare.row.Row.of`` makes a job's outcome its results.jsonl row.)"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from lmtransfer.compare.row import Row
from lmtransfer.compare.search import PruneSpec
from lmtransfer.compare.worker import run_job
from lmtransfer.config.schema import RunConfig
from lmtransfer.core.atomic import atomic_write_json

RESULTS = "results.jsonl"
EXTRACTIONS = "extractions.json"  # cache folders of a run -> what extracting them took (seconds)


def execute(
    kind: str,
    configs: list[RunConfig],
    out: Path,
    progress: bool,
    isolate: bool,
    inference_examples: int,
    prune: PruneSpec | None = None,  # a search trial's pruner
    trial_dir: str | None = None,  # an adopt job's trial
) -> dict[str, Any]:
    job = {
        "inference_examples": inference_examples,
        "kind": kind,
        "configs": [c.model_dump(mode="json") for c in configs],
        "progress": progress,
        "threads": torch.get_num_threads(),  # a child gets the parent's setting, not torch's default
        **({"trial_dir": trial_dir} if trial_dir else {}),
    }
    if not isolate:
        return run_job(job, prune.build() if prune is not None else None)
    if prune is not None:
        job["prune"] = prune.to_json()
    work = Path(tempfile.mkdtemp(dir=out, prefix=".job-"))
    try:
        (work / "job.json").write_text(json.dumps(job), encoding="utf-8")
        worker = [sys.executable, "-m", "lmtransfer.compare.worker"]
        command = [*worker, str(work / "job.json"), str(work / "result.json")]
        code = subprocess.run(command, stdout=_stderr_fd(), check=False).returncode
        if (work / "result.json").is_file():
            return json.loads((work / "result.json").read_text(encoding="utf-8"))
        return {"error": f"the child process ended with exit code {code} and no result (killed? out of memory?)"}
    finally:
        for path in work.glob("*"):
            path.unlink()
        work.rmdir()


def _stderr_fd() -> int | None:
    """The child's stdout goes to our stderr, so that stdout carries only the report."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a captured stream (pytest, notebooks)
        return None


def summary_line(row: Row) -> str:
    size = f" / {row.train_size} train" if row.train_size is not None else ""
    head = f"{row.variant} / {row.encoder}{size} / seed {row.seed}"
    if not row.ok:
        return f"{head}: FAILED: {row.error}"
    metric, s = row.metric or "", row.seconds
    speed = f", {row.inference['examples_per_second']:,.1f} ex/s" if row.inference else ""
    return (
        f"{head}: dev {metric} {(row.dev or {}).get(metric, float('nan')):.4f}, "
        f"extraction {s.get('extraction') or 0:.1f} s, training {s.get('training') or 0:.1f} s, "
        f"peak RSS {(row.peak_rss_bytes or 0) / 2**20:,.0f} MiB{speed}{_converged(row.convergence)}"
    )


def _converged(convergence: dict[str, Any] | None) -> str:
    if not convergence or convergence.get("converged") is None:
        return ""
    steps = f"{convergence['steps']:,} steps"
    if convergence["converged"]:
        return f"; {steps}, converged (best at step {convergence['best_step']:,})"
    return f"; {steps}, NOT converged ({convergence['reason']})"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def note_extraction(out: Path, caches: dict[str, str], seconds: float) -> None:
    ledger = _ledger(out)
    ledger["|".join(sorted(set(caches.values())))] = seconds
    atomic_write_json(out / EXTRACTIONS, ledger)


def _ledger(out: Path) -> dict[str, float]:
    try:
        return json.loads((out / EXTRACTIONS).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def charge_extraction(out: Path, outcome: dict[str, Any]) -> None:
    """A row's extraction seconds are what its features took to extract, also where an earlier
    extraction (the shared one, the first seed's run, another comparison) made them: the caches record it,
    so the cost does not depend on whether a cache happened to exist. Its own time stays as
    extraction_own. (Caches made before they recorded it: what this comparison saw making them.)"""
    caches = outcome.get("caches") or {}
    seconds = outcome["seconds"]
    own = seconds.get("extraction")
    if not caches or own is None:
        return
    if not outcome.get("extraction_shared"):
        note_extraction(out, caches, own)
    seconds["extraction_own"] = own
    made = seconds.get("extraction_made")
    seconds["extraction"] = made if made is not None else _ledger(out).get("|".join(sorted(set(caches.values()))), own)
