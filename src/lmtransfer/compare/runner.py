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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from lmtransfer.compare.report import Report, write_report
from lmtransfer.compare.results import read_rows, shown_values
from lmtransfer.compare.search import Pruner, SearchResult, is_trial, run_search
from lmtransfer.compare.worker import run_job
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
    rows: list[dict[str, Any]]  # the rows run now (finished or failed); earlier ones are in results.jsonl
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
    searched = _searches(config, out, progress)
    todo_all = jobs(config, {key: found.values for key, found in searched.items() if found.values})
    earlier = read_rows(out / RESULTS)
    finished = {_key(r) for r in earlier if r.get("status") == "ok" and not is_trial(r)}
    todo = [j for j in todo_all if j.key not in finished]
    _say(f"compare: {len(todo_all)} rows, {len(todo_all) - len(todo)} already in {out / RESULTS}, {len(todo)} to run")
    for group in extraction_groups(todo):
        layers = sorted({str(j.config.features.layers) for j in group})
        _say(f"compare: extracting once for {len(group)} rows ({', '.join(layers)}) of {group[0].encoder}")
        outcome = _execute("extract", [j.config for j in group], out, progress, isolate, 0)
        if "error" in outcome:  # not fatal: each row then extracts what it needs itself
            warnings.warn(f"shared extraction failed ({outcome['error']}); rows extract their own", stacklevel=2)
        elif outcome["extracted"]:  # (complete caches found again say nothing of what making them took)
            _note_extraction(out, outcome["caches"], outcome["seconds"])
    rows = []
    for number, job in enumerate(todo, 1):
        size = f" / {job.train_size} train" if job.train_size is not None else ""
        _say(f"[{number}/{len(todo)}] {job.variant} / {job.encoder}{size} / seed {job.seed}: {job.config.strategy}")
        began = time.perf_counter()
        outcome = _execute("row", [job.config], out, progress, isolate, config.compare.inference_examples)
        if "error" not in outcome:
            _charge_extraction(out, outcome)
        row = make_row(job, outcome, time.perf_counter() - began, out)
        found = searched.get((job.variant, job.encoder, job.train_size))
        if found is not None:  # what its search chose, and what the search cost
            row["search"] = found.to_json()
        append_jsonl(out / RESULTS, row)
        rows.append(row)
        _say(f"[{number}/{len(todo)}] {summary_line(row)}")
    report = write_report(out)
    if config.train.report_to:  # the verdict and the report, as a run of the rows' experiment
        experiment = config.train.experiment or out.name
        files = [out / "report.md", out / "report.html"]
        log_summary(config.train.report_to, experiment, report.verdict, files, out / "logs", config.error)
    return CompareResult(out, rows, len(todo_all) - len(todo), report)


def _searches(config: RunConfig, out: Path, progress: bool) -> dict[tuple, SearchResult]:
    """Run each search's trials that results.jsonl does not hold yet; what each chose."""
    plans = search_plans(config)
    if not plans:
        return {}
    assert config.compare is not None
    rows = read_rows(out / RESULTS)

    def run_trial(
        plan: SearchPlan, trial: RunConfig, values: dict[str, Any], number: int, prune: Pruner | None
    ) -> dict[str, Any]:
        job = Job(plan.variant, plan.encoder, trial.train.seed, trial, plan.train_size)
        _say(f"[trial {number + 1}/{plan.search.trials}] {plan.variant} / {plan.encoder}: {shown_values(values)}")
        began = time.perf_counter()
        # here, not in a child: a trial's peak memory is not reported, and a child's start (10-20 s of
        # imports) would cost more than a feature-based trial itself; dev alone, no timed prediction; what
        # training prints goes where a child's would, to stderr, so that stdout carries only the report
        with contextlib.redirect_stdout(sys.stderr):
            outcome = _execute("row", [trial], out, progress, False, 0, prune)
        if "error" not in outcome:
            _charge_extraction(out, outcome)
        row = make_row(job, outcome, time.perf_counter() - began, out) | {"trial": number, "params": values}
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
    after_epoch: Pruner | None = None,  # only where not isolated: a search's pruner
) -> dict[str, Any]:
    job = {
        "inference_examples": inference_examples,
        "kind": kind,
        "configs": [c.model_dump(mode="json") for c in configs],
        "progress": progress,
        "threads": torch.get_num_threads(),  # a child gets the parent's setting, not torch's default
    }
    if not isolate:
        return run_job(job, after_epoch)
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
        f"peak RSS {row['peak_rss_bytes'] / 2**20:,.0f} MiB{speed}"
    )


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
