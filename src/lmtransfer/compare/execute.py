"""Where a comparison's jobs run, and what a row records. A job (a row, a search trial, a shared extraction, an
adoption) is a ``Work``; an ``Executor`` runs it and gives back its outcome and the seconds it took where it ran:
``LocalExecutor`` here, one job after another, each in a child process of its own
(``python -m lmtransfer.compare.worker``), so that the peak memory it reports is its own, or in this process;
``compare.ray_executor.RayExecutor`` on Ray, side by side (``compare.executors`` picks). Also: what the row's
features took to extract, whoever extracted them; the one line each row prints. (``compare.row.Row.of`` makes
a job's outcome its results.jsonl row.)"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import torch

from lmtransfer.compare.pruning import PruneSpec
from lmtransfer.compare.row import Row
from lmtransfer.compare.worker import run_job
from lmtransfer.config.schema import RunConfig
from lmtransfer.core.atomic import atomic_write_json
from lmtransfer.runs.kinds import way_of

RESULTS = "results.jsonl"
EXTRACTIONS = "extractions.json"  # cache folders of a run -> what extracting them took (seconds)


@dataclass(frozen=True)
class Work:
    """One job for ``compare.worker``: a row or a search's trial (``row``), the union of some feature-based rows'
    layers extracted once (``extract``), or a search trial's run made its row's (``adopt``)."""

    kind: str
    configs: tuple[RunConfig, ...]
    inference_examples: int = 0  # dev items whose live prediction a row times (0: none, as for a trial)
    prune: PruneSpec | None = None  # a search trial's pruner
    trial_dir: str | None = None  # an adopt job's trial

    @property
    def needs(self) -> str:
        """Its kind of resources (``core.choices.RESOURCE_KINDS``): an extraction, or its row's."""
        return "extraction" if self.kind == "extract" else resource_kind(self.configs[0])

    @property
    def light(self) -> bool:
        """A search trial that trains a head on cached features: it costs less than a child process's start."""
        return self.prune is not None and self.needs == "feature"

    def job(self, progress: bool, threads: int) -> dict[str, Any]:
        """The worker's job, plain JSON (``compare.worker``)."""
        return {
            "inference_examples": self.inference_examples,
            "kind": self.kind,
            "configs": [c.model_dump(mode="json") for c in self.configs],
            "progress": progress,
            "threads": threads,  # a child gets the parent's setting (or its CPUs on Ray), not torch's default
            **({"prune": self.prune.to_json()} if self.prune is not None else {}),
            **({"trial_dir": self.trial_dir} if self.trial_dir else {}),
        }


def resource_kind(config: RunConfig) -> str:
    """The resources a row (or trial) of ``config`` needs: a fine-tuning row's where its way trains its encoder,
    else a feature-based row's."""
    return "finetune" if way_of(config).trains_encoder else "feature"


class Ran(NamedTuple):
    outcome: dict[str, Any]  # the worker's, or {"error": ...}
    seconds: float  # what the job took where it ran


class Cancelled(KeyboardInterrupt):
    """A job stopped by Ctrl-C (``Executor.cancel``): no row is recorded for it, so a rerun runs it again."""


class Executor(Protocol):
    """Runs a comparison's jobs. Entered before the first job (Ray joins or starts its cluster there and checks
    that its workers see the comparison's files) and left after the last."""

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc: object) -> None: ...

    def slots(self, needs: str | None = None) -> int:
        """Jobs (of one kind of resources; None: of any) that run at once."""
        ...

    def isolated(self, work: Work) -> bool:
        """Whether ``work`` runs in a process of its own (its peak memory its own)."""
        ...

    def run(self, work: Work) -> Ran:
        """Run ``work`` and wait for it; raises ``Cancelled`` once ``cancel`` was called."""
        ...

    def cancel(self) -> None:
        """Stop the jobs running (Ctrl-C)."""
        ...


class LocalExecutor:
    """Each job here, one after another: in a child process of its own, or, where ``isolate`` is false or the job
    is light, in this process (what it prints then goes to stderr, so that stdout carries only the report)."""

    def __init__(self, out: Path, progress: bool, isolate: bool) -> None:
        self.out, self.progress, self.isolate = out, progress, isolate

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def slots(self, needs: str | None = None) -> int:
        return 1

    def isolated(self, work: Work) -> bool:
        return self.isolate and not work.light

    def cancel(self) -> None:
        return None  # Ctrl-C reaches a child with this process

    def run(self, work: Work) -> Ran:
        began = time.perf_counter()
        job = work.job(self.progress, torch.get_num_threads())
        if self.isolated(work):
            outcome = _in_child(job, self.out)
        else:
            with contextlib.redirect_stdout(sys.stderr):
                outcome = run_job(job)
        return Ran(outcome, time.perf_counter() - began)


def _in_child(job: dict[str, Any], out: Path) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(dir=out, prefix=".job-"))
    try:
        (folder / "job.json").write_text(json.dumps(job), encoding="utf-8")
        worker = [sys.executable, "-m", "lmtransfer.compare.worker"]
        command = [*worker, str(folder / "job.json"), str(folder / "result.json")]
        code = subprocess.run(command, stdout=_stderr_fd(), check=False).returncode
        if (folder / "result.json").is_file():
            return json.loads((folder / "result.json").read_text(encoding="utf-8"))
        return {"error": f"the child process ended with exit code {code} and no result (killed? out of memory?)"}
    finally:
        for path in folder.glob("*"):
            path.unlink()
        folder.rmdir()


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
    """A line on stderr, written whole (threads of the driver say theirs side by side)."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


_LEDGER = threading.Lock()  # jobs side by side (Ray) note their extractions from threads of this process


def note_extraction(out: Path, caches: dict[str, str], seconds: float) -> None:
    with _LEDGER:
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
