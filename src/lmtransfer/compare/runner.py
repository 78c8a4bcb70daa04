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
import sys
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmtransfer.compare.execute import (
    RESULTS,
    charge_extraction,
    execute,
    note_extraction,
    say,
    summary_line,
)
from lmtransfer.compare.report import Report, write_report
from lmtransfer.compare.results import read_rows, shown_values
from lmtransfer.compare.row import Row
from lmtransfer.compare.rows import Rows, settled
from lmtransfer.compare.search import PruneSpec, SearchResult, run_search
from lmtransfer.config.schema import RunConfig
from lmtransfer.config.variants import Job, SearchPlan, jobs, search_plans
from lmtransfer.core.atomic import append_jsonl, atomic_write_text
from lmtransfer.core.choices import BASELINES
from lmtransfer.runs.tracking import log_summary


@dataclass
class CompareResult:
    directory: Path
    rows: list[Row]  # the rows run now (finished or failed; the last attempt of an extended one)
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
    last = {_key(r): r for r in read_rows(out / RESULTS) if not r.is_trial}  # each row's latest attempt
    todo = [(j, last.get(j.key)) for j in todo_all if not settled(last.get(j.key), cap)]
    todo = [(j, row if row is not None and row.ok else None) for j, row in todo]
    say(f"compare: {len(todo_all)} rows, {len(todo_all) - len(todo)} already in {out / RESULTS}, {len(todo)} to run")
    _extract_shared([j for j, earlier in todo if earlier is None], out, progress, isolate)
    runner = Rows(out, progress, isolate, config.compare.inference_examples, cap, searched)
    rows = []
    for number, (job, earlier) in enumerate(todo, 1):
        tag = f"[{number}/{len(todo)}]"
        size = f" / {job.train_size} train" if job.train_size is not None else ""
        say(f"{tag} {job.variant} / {job.encoder}{size} / seed {job.seed}: {job.config.strategy}")
        rows.append(runner.settle(job, earlier, tag))
    report = write_report(out)
    if config.train.report_to:  # the verdict and the report, as a run of the rows' experiment
        experiment = config.train.experiment or out.name
        files = [out / "report.md", out / "report.html"]
        log_summary(config.train.report_to, experiment, report.verdict, files, out / "logs", config.error)
    return CompareResult(out, rows, len(todo_all) - len(todo), report)


def _extract_shared(todo: list[Job], out: Path, progress: bool, isolate: bool) -> None:
    """The union of the layers of each group of feature-based rows, extracted once before they run."""
    for group in extraction_groups(todo):
        layers = sorted({str(j.config.features.layers) for j in group})
        say(f"compare: extracting once for {len(group)} rows ({', '.join(layers)}) of {group[0].encoder}")
        outcome = execute("extract", [j.config for j in group], out, progress, isolate, 0)
        if "error" in outcome:  # not fatal: each row then extracts what it needs itself
            warnings.warn(f"shared extraction failed ({outcome['error']}); rows extract their own", stacklevel=2)
        elif outcome["extracted"]:  # (complete caches found again say nothing of what making them took)
            note_extraction(out, outcome["caches"], outcome["seconds"])


def _searches(config: RunConfig, out: Path, progress: bool, isolate: bool) -> dict[tuple, SearchResult]:
    """Run each search's trials that results.jsonl does not hold yet; what each chose."""
    plans = search_plans(config)
    if not plans:
        return {}
    assert config.compare is not None
    rows = read_rows(out / RESULTS)

    def run_trial(plan: SearchPlan, trial: RunConfig, values: dict[str, Any], number: int, prune: PruneSpec) -> Row:
        job = Job(plan.variant, plan.encoder, trial.train.seed, trial, plan.train_size)
        say(f"[trial {number + 1}/{plan.search.trials}] {plan.variant} / {plan.encoder}: {shown_values(values)}")
        began = time.perf_counter()
        # a feature-based trial here, not in a child: a child's start (10-20 s of imports) would cost more than
        # the trial itself. A fine-tuning trial in a child, as a row: its peak memory is then its own, and the
        # first seed's row can adopt the chosen one instead of training it again. Dev alone, no timed
        # prediction; what training prints goes to stderr, so that stdout carries only the report
        alone = isolate and trial.strategy != "feature"
        with contextlib.redirect_stdout(sys.stderr):
            outcome = execute("row", [trial], out, progress, alone, 0, prune)
        if "error" not in outcome:
            charge_extraction(out, outcome)
        how = {"trial": number, "params": values, "isolated": alone}
        row = Row.of(job, outcome, time.perf_counter() - began, out, **how)
        append_jsonl(out / RESULTS, row.to_json())
        say(f"[trial {number + 1}/{plan.search.trials}] {summary_line(row)}")
        return row

    found = {}
    for plan in plans:
        size = f" at {plan.train_size} train" if plan.train_size is not None else ""
        keys = ", ".join(plan.search.space)
        say(f"compare: searching {plan.variant} / {plan.encoder}{size}: {plan.search.trials} trials over {keys}")
        found[plan.key] = result = run_search(plan, rows, run_trial, seed=config.compare.seeds[0])
        chose = shown_values(result.values) if result.values else "nothing (no trial finished)"
        say(f"compare: {plan.variant}{size} chose {chose} ({result.trials} trials, {result.seconds:,.0f} s)")
    return found


def _key(row: Row) -> tuple[str, str, int, str | None]:
    return (row.variant, row.encoder, row.seed, row.config_hash)


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
