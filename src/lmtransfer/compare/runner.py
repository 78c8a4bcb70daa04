"""``lmtransfer compare``: every variant x encoder x seed of a compare config, one row each in results.jsonl.

    from lmtransfer import compare, load_config
    result = compare(load_config("configs/demo.yaml"))
    print(result.report.markdown)

Each row runs in a fresh child process (``python -m lmtransfer.compare.worker``), so its peak memory is its
own. Feature-based rows that differ only in their layers (and what they train) share one
extraction: the union of their layers is extracted first, and each run then reads its layers from
that cache. Rows already in results.jsonl (same variant, encoder, seed and config hash) are not run
again, so an interrupted comparison resumes where it stopped; a row whose run fails is recorded as
failed, with its error, and the comparison goes on.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from lmtransfer.compare.report import Report, write_report
from lmtransfer.compare.results import read_rows, shown_values
from lmtransfer.compare.search import PruneSpec, SearchResult, is_pruned, is_trial, run_search
from lmtransfer.compare.worker import run_job
from lmtransfer.config.build import changed
from lmtransfer.config.schema import RunConfig
from lmtransfer.config.variants import Job, SearchPlan, jobs, search_plans
from lmtransfer.core.atomic import append_jsonl, atomic_write_json, atomic_write_text
from lmtransfer.core.choices import BASELINES
from lmtransfer.runs.tracking import log_summary

RESULTS = "results.jsonl"
EXTRACTIONS = "extractions.json"  # cache folders of a run -> what extracting them took (seconds)


@dataclass
class CompareResult:
    directory: Path
    rows: list[dict[str, Any]]  # the rows run now (finished or failed; the last attempt of an extended one)
    skipped: int  # rows found finished in results.jsonl
    report: Report


def compare(config: RunConfig, progress: bool = True, isolate: bool = True) -> CompareResult:
    """Run the rows of ``config.compare`` that results.jsonl does not hold yet, then write the report.

    ``isolate`` runs each row in a child process (its peak RSS is then its own); False runs them here.
    """
    assert config.compare is not None, "compare() needs a config with a compare section"
    out = Path(config.compare.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", config.to_yaml())
    searched = _searches(config, out, progress, isolate)
    todo_all = jobs(config, {key: found.values for key, found in searched.items() if found.values})
    cap = config.compare.extensions
    last = {_key(r): r for r in read_rows(out / RESULTS) if not is_trial(r)}  # each row's latest attempt
    todo = [(j, last.get(j.key)) for j in todo_all if not _settled(last.get(j.key), cap)]
    todo = [(j, row if row is not None and row.get("status") == "ok" else None) for j, row in todo]
    _say(f"compare: {len(todo_all)} rows, {len(todo_all) - len(todo)} already in {out / RESULTS}, {len(todo)} to run")
    for group in extraction_groups([j for j, earlier in todo if earlier is None]):
        layers = sorted({str(j.config.features.layers) for j in group})
        _say(f"compare: extracting once for {len(group)} rows ({', '.join(layers)}) of {group[0].encoder}")
        outcome = _execute("extract", [j.config for j in group], out, progress, isolate, 0)
        if "error" in outcome:  # not fatal: each row then extracts what it needs itself
            warnings.warn(f"shared extraction failed ({outcome['error']}); rows extract their own", stacklevel=2)
        elif outcome["extracted"]:  # (complete caches found again say nothing of what making them took)
            _note_extraction(out, outcome["caches"], outcome["seconds"])

    def run_row(job: Job, extension: int, run: RunConfig) -> dict[str, Any]:
        began = time.perf_counter()
        outcome = _execute("row", [run], out, progress, isolate, config.compare.inference_examples)
        if "error" not in outcome:
            _charge_extraction(out, outcome)
        row = make_row(replace(job, config=run), outcome, time.perf_counter() - began, out)
        row |= {"config_hash": job.config_hash, "extension": extension}  # the row's identity is the job's
        found = searched.get(_plan_key(job))
        if found is not None:  # what its search chose, and what the search cost
            row["search"] = found.to_json()
        append_jsonl(out / RESULTS, row)
        return row

    def adopt(job: Job, trial: dict[str, Any]) -> dict[str, Any]:
        began = time.perf_counter()
        found = _execute(
            "adopt", [job.config], out, progress, isolate, config.compare.inference_examples, None, trial["run_dir"]
        )
        if "error" in found:  # not fatal: the row trains its run as usual
            warnings.warn(f"adopting trial {trial['trial']} failed ({found['error']}); training the row", stacklevel=2)
            return run_row(job, 0, job.config)
        measured = {k: trial[k] for k in TRIAL_MEASURES if k in trial}  # what training took: the trial's own
        row = make_row(job, measured | found, time.perf_counter() - began, out)
        row |= {"extension": 0, "adopted_trial": trial["trial"], "search": searched[_plan_key(job)].to_json()}
        append_jsonl(out / RESULTS, row)
        return row

    rows = []
    for number, (job, row) in enumerate(todo, 1):
        size = f" / {job.train_size} train" if job.train_size is not None else ""
        _say(f"[{number}/{len(todo)}] {job.variant} / {job.encoder}{size} / seed {job.seed}: {job.config.strategy}")
        trial = _adoptable(searched.get(_plan_key(job)), job) if row is None else None
        if trial is not None:
            _say(
                f"[{number}/{len(todo)}] the same run as its search's trial {trial['trial'] + 1}: adopted, test scored"
            )
            row = adopt(job, trial)
            _say(f"[{number}/{len(todo)}] {summary_line(row)}")
        elif row is None:
            row = run_row(job, 0, job.config)
            _say(f"[{number}/{len(todo)}] {summary_line(row)}")
        while _extend(row, cap):  # not converged: twice the optimizer steps, up to the cap
            steps, extension = 2 * row["convergence"]["budget_steps"], row.get("extension", 0) + 1
            _say(f"[{number}/{len(todo)}] again with {steps:,} optimizer steps (doubling {extension} of {cap})")
            row = run_row(job, extension, changed(job.config, {"train.min_steps": steps}))
            _say(f"[{number}/{len(todo)}] {summary_line(row)}")
        rows.append(row)
    report = write_report(out)
    if config.train.report_to:  # the verdict and the report, as a run of the rows' experiment
        experiment = config.train.experiment or out.name
        files = [out / "report.md", out / "report.html"]
        log_summary(config.train.report_to, experiment, report.verdict, files, out / "logs", config.error)
    return CompareResult(out, rows, len(todo_all) - len(todo), report)


def _searches(config: RunConfig, out: Path, progress: bool, isolate: bool) -> dict[tuple, SearchResult]:
    """Run each search's trials that results.jsonl does not hold yet; what each chose."""
    plans = search_plans(config)
    if not plans:
        return {}
    assert config.compare is not None
    rows = read_rows(out / RESULTS)

    def run_trial(
        plan: SearchPlan, trial: RunConfig, values: dict[str, Any], number: int, prune: PruneSpec
    ) -> dict[str, Any]:
        job = Job(plan.variant, plan.encoder, trial.train.seed, trial, plan.train_size)
        _say(f"[trial {number + 1}/{plan.search.trials}] {plan.variant} / {plan.encoder}: {shown_values(values)}")
        began = time.perf_counter()
        # a feature-based trial here, not in a child: a child's start (10-20 s of imports) would cost more than
        # the trial itself. A fine-tuning trial in a child, as a row: its peak memory is then its own, and the
        # first seed's row can adopt the chosen one instead of training it again. Dev alone, no timed
        # prediction; what training prints goes to stderr, so that stdout carries only the report
        alone = isolate and trial.strategy != "feature"
        with contextlib.redirect_stdout(sys.stderr):
            outcome = _execute("row", [trial], out, progress, alone, 0, prune)
        if "error" not in outcome:
            _charge_extraction(out, outcome)
        row = make_row(job, outcome, time.perf_counter() - began, out) | {"trial": number, "params": values}
        row |= {"isolated": alone}
        append_jsonl(out / RESULTS, row)
        _say(f"[trial {number + 1}/{plan.search.trials}] {summary_line(row)}")
        return row

    found = {}
    for plan in plans:
        size = f" at {plan.train_size} train" if plan.train_size is not None else ""
        keys = ", ".join(plan.search.space)
        _say(f"compare: searching {plan.variant} / {plan.encoder}{size}: {plan.search.trials} trials over {keys}")
        found[plan.key] = result = run_search(plan, rows, run_trial, seed=config.compare.seeds[0])
        chose = shown_values(result.values) if result.values else "nothing (no trial finished)"
        _say(f"compare: {plan.variant}{size} chose {chose} ({result.trials} trials, {result.seconds:,.0f} s)")
    return found


def _note_extraction(out: Path, caches: dict[str, str], seconds: float) -> None:
    ledger = _ledger(out)
    ledger["|".join(sorted(set(caches.values())))] = seconds
    atomic_write_json(out / EXTRACTIONS, ledger)


def _ledger(out: Path) -> dict[str, float]:
    try:
        return json.loads((out / EXTRACTIONS).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def _charge_extraction(out: Path, outcome: dict[str, Any]) -> None:
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
        _note_extraction(out, caches, own)
    seconds["extraction_own"] = own
    made = seconds.get("extraction_made")
    seconds["extraction"] = made if made is not None else _ledger(out).get("|".join(sorted(set(caches.values()))), own)


def _key(row: dict[str, Any]) -> tuple[str, str, int, str]:
    return (row.get("variant"), row.get("encoder"), row.get("seed"), row.get("config_hash"))


# What a trial's row measured of training, which the row adopting its run keeps (test, units, intervals and
# the timed prediction come from the adopting child).
TRIAL_MEASURES = (
    "strategy", "task", "metric", "dev", "seconds", "extraction_shared", "caches", "peak_rss_bytes", "cache_bytes",
    "trainable_parameters", "sizes", "best_epoch", "history", "convergence", "layer_weights",
)  # fmt: skip


def _plan_key(job: Job) -> tuple[str, str, Any]:
    return (job.variant, job.encoder, job.train_size)


def _adoptable(found: SearchResult | None, job: Job) -> dict[str, Any] | None:
    """The chosen trial whose run is this row's run, where the row may adopt it: the first seed's (the seed
    trials run on), the same config hash, run in a child of its own (so its peak memory is its own), and its
    folder still there."""
    trial = found.best if found is not None else None
    if trial is None or not trial.get("isolated") or trial.get("status") != "ok" or is_pruned(trial):
        return None
    if trial.get("config_hash") != job.config_hash or trial.get("seed") != job.seed:
        return None
    return trial if (Path(trial["run_dir"]) / "metrics.json").is_file() else None


def _settled(row: dict[str, Any] | None, cap: int) -> bool:
    """Whether a row's latest attempt is final: it finished and needs no longer budget."""
    return row is not None and row.get("status") == "ok" and not _extend(row, cap)


def _extend(row: dict[str, Any], cap: int) -> bool:
    """Whether a finished row runs again with twice the steps: its run did not converge (a baseline, a run
    without dev and a row from before convergence was recorded cannot tell), and the cap is not reached."""
    converged = (row.get("convergence") or {}).get("converged")
    return row.get("status") == "ok" and converged is False and row.get("extension", 0) < cap


def extraction_groups(todo: Iterable[Job]) -> list[list[Job]]:
    """Feature-based rows grouped by everything their features depend on but the layers: each group's
    union of layers is extracted once, up front. (A group whose rows all want the same layers needs no
    such step: its first run extracts them, and the others find that cache.)"""
    groups: dict[str, list[Job]] = {}
    for job in todo:
        c = job.config
        if c.strategy != "feature" or c.encoder.model in BASELINES:
            continue
        features = c.features.model_dump(mode="json", exclude={"layers", "combine", "window_pooling"})
        key = {"encoder": c.encoder.model_dump(mode="json"), "features": features, "task": c.task}
        key |= {"data": c.data.model_dump(mode="json"), "qa": c.qa.model_dump(mode="json"), "cache": c.cache_dir}
        groups.setdefault(json.dumps(key, sort_keys=True), []).append(job)
    return [group for group in groups.values() if len({str(j.config.features.layers) for j in group}) > 1]


def _execute(
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


def make_row(job: Job, outcome: dict[str, Any], seconds: float, out: Path | None = None) -> dict[str, Any]:
    """The results.jsonl row of one job: its identity, then what it measured (or its error). Its units'
    files are named relative to the comparison folder ``out`` where they lie in it, so that the folder
    can be moved and its report rebuilt."""
    row = {
        "variant": job.variant,
        "encoder": job.encoder,
        "seed": job.seed,
        **({"train_size": job.train_size} if job.train_size is not None else {}),
        "config_hash": job.config_hash,
        "status": "failed" if "error" in outcome else "ok",
        "run_dir": job.config.output_dir,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "child_seconds": seconds,
    }
    if "error" in outcome:
        return row | {"strategy": job.config.strategy, "error": outcome["error"], "traceback": outcome.get("traceback")}
    if out is not None and outcome.get("units"):
        outcome = outcome | {"units": {k: _relative(Path(v), out) for k, v in outcome["units"].items()}}
    return row | outcome


def _relative(path: Path, out: Path) -> str:
    try:
        return str(path.resolve().relative_to(out.resolve()))
    except ValueError:
        return str(path.resolve())


def summary_line(row: dict[str, Any]) -> str:
    size = f" / {row['train_size']} train" if row.get("train_size") is not None else ""
    head = f"{row['variant']} / {row['encoder']}{size} / seed {row['seed']}"
    if row["status"] != "ok":
        return f"{head}: FAILED: {row['error']}"
    metric = row["metric"]
    s = row["seconds"]
    speed = f", {row['inference']['examples_per_second']:,.1f} ex/s" if row.get("inference") else ""
    return (
        f"{head}: dev {metric} {row['dev'].get(metric, float('nan')):.4f}, "
        f"extraction {s['extraction'] or 0:.1f} s, training {s['training'] or 0:.1f} s, "
        f"peak RSS {row['peak_rss_bytes'] / 2**20:,.0f} MiB{speed}{_converged(row.get('convergence'))}"
    )


def _converged(convergence: dict[str, Any] | None) -> str:
    if not convergence or convergence.get("converged") is None:
        return ""
    steps = f"{convergence['steps']:,} steps"
    if convergence["converged"]:
        return f"; {steps}, converged (best at step {convergence['best_step']:,})"
    return f"; {steps}, NOT converged ({convergence['reason']})"


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
