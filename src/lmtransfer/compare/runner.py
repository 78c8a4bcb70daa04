"""``lmtransfer compare``: every variant x encoder x seed of a compare config, one row each in results.jsonl.

    from lmtransfer import compare, load_config
    result = compare(load_config("configs/demo.yaml"))
    print(result.report.markdown)

Each row runs in a fresh child process (``python -m lmtransfer.compare.worker``), so its peak memory is its
own: here, one after another, or as Ray tasks side by side (``compare.executor``; ``compare.executors``), this
process then the driver that alone writes results.jsonl. First the searches, then the shared extractions,
then the rows, each phase's jobs side by side as far as the executor runs them (``compare.fanout``).
Feature-based rows that differ only in their layers (and what they train) share one extraction: the union of
their layers is extracted first, and each run then reads its layers from that cache. Rows already in
results.jsonl (same variant, encoder, seed and config hash) are not run again, so an interrupted comparison
resumes where it stopped; a row whose run fails is recorded as failed, with its error, and the comparison goes
on.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmtransfer.compare.execute import (
    RESULTS,
    Executor,
    Work,
    charge_extraction,
    note_extraction,
    resource_kind,
    say,
    summary_line,
)
from lmtransfer.compare.executors import executor_for
from lmtransfer.compare.fanout import Board, fan_out
from lmtransfer.compare.pruning import PruneSpec
from lmtransfer.compare.report import Report, write_report
from lmtransfer.compare.results import read_rows, shown_values
from lmtransfer.compare.row import Row
from lmtransfer.compare.rows import Rows, record, settled
from lmtransfer.compare.search import SearchResult, run_search
from lmtransfer.config.schema import RunConfig
from lmtransfer.config.variants import Job, SearchPlan, first_values, jobs, search_plans
from lmtransfer.core.atomic import atomic_write_text
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

    ``compare.executor`` says where the jobs run (``compare.executors``). With the local executor, ``isolate``
    runs each row in a child process (its peak RSS is then its own); False runs them here.
    """
    assert config.compare is not None, "compare() needs a config with a compare section"
    out = Path(config.compare.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    with executor_for(config, progress, isolate) as executor:  # (Ray: refuses here a path its workers cannot see)
        atomic_write_text(out / "config.yaml", config.to_yaml())
        searched = _searches(config, out, executor)
        todo_all = jobs(config, {key: found.values for key, found in searched.items() if found.values})
        cap = config.compare.extensions
        last = {_key(r): r for r in read_rows(out / RESULTS) if not r.is_trial}  # each row's latest attempt
        todo = [(j, last.get(j.key)) for j in todo_all if not settled(last.get(j.key), cap)]
        todo = [(j, row if row is not None and row.ok else None) for j, row in todo]
        done = len(todo_all) - len(todo)
        say(f"compare: {len(todo_all)} rows, {done} already in {out / RESULTS}, {len(todo)} to run")
        _extract_shared([j for j, earlier in todo if earlier is None], out, executor)
        rows = _rows(todo, Rows(out, executor, config.compare.inference_examples, cap, searched), executor)
    report = write_report(out)
    if config.train.report_to:  # the verdict and the report, as a run of the rows' experiment
        experiment = config.train.experiment or out.name
        files = [out / "report.md", out / "report.html"]
        log_summary(config.train.report_to, experiment, report.verdict, files, out / "logs", config.error)
    return CompareResult(out, rows, done, report)


def _rows(todo: list[tuple[Job, Row | None]], runner: Rows, executor: Executor) -> list[Row]:
    """Each row settled (``Rows.settle``), as many side by side as the executor runs."""
    board = Board("rows", len(todo))

    def settle(numbered: tuple[int, tuple[Job, Row | None]]) -> Row:
        number, (job, earlier) = numbered
        tag = f"[{number}/{len(todo)}]"
        size = f" / {job.train_size} train" if job.train_size is not None else ""
        say(f"{tag} {job.variant} / {job.encoder}{size} / seed {job.seed}: {job.config.strategy}")
        board.start()
        row = runner.settle(job, earlier, tag)
        say(board.finish())
        return row

    return fan_out(list(enumerate(todo, 1)), settle, executor.slots(), executor.cancel)


def _extract_shared(todo: list[Job], out: Path, executor: Executor) -> None:
    """The union of the layers of each group of feature-based rows, extracted once before they run."""

    def extract(group: list[Job]) -> None:
        layers = sorted({str(j.config.features.layers) for j in group})
        say(f"compare: extracting once for {len(group)} rows ({', '.join(layers)}) of {group[0].encoder}")
        outcome, _ = executor.run(Work("extract", tuple(j.config for j in group)))
        if "error" in outcome:  # not fatal: each row then extracts what it needs itself
            warnings.warn(f"shared extraction failed ({outcome['error']}); rows extract their own", stacklevel=2)
        elif outcome["extracted"]:  # (complete caches found again say nothing of what making them took)
            note_extraction(out, outcome["caches"], outcome["seconds"])

    groups = extraction_groups(todo, side_by_side=executor.slots() > 1)
    fan_out(groups, extract, executor.slots("extraction"), executor.cancel)


def _searches(config: RunConfig, out: Path, executor: Executor) -> dict[tuple, SearchResult]:
    """Run each search's trials that results.jsonl does not hold yet (the searches, and each one's trials, side
    by side as the executor allows); what each chose."""
    plans = search_plans(config)
    if not plans:
        return {}
    assert config.compare is not None
    rows = read_rows(out / RESULTS)
    tried = Counter((r.variant, r.encoder, r.train_size) for r in rows if r.is_trial)
    board = Board("trials", sum(max(0, p.search.trials - tried[p.key]) for p in plans))

    def run_trial(plan: SearchPlan, trial: RunConfig, values: dict[str, Any], number: int, prune: PruneSpec) -> Row:
        job = Job(plan.variant, plan.encoder, trial.train.seed, trial, plan.train_size)
        say(f"[trial {number + 1}/{plan.search.trials}] {plan.variant} / {plan.encoder}: {shown_values(values)}")
        board.start()
        # dev alone, no timed prediction. Where it runs is the executor's: the local one runs a feature-based trial
        # here (a child's start, 10-20 s of imports, would cost more than the trial), a fine-tuning trial in a
        # process of its own, as a row: its peak memory is then its own, and the first seed's row can adopt it
        work = Work("row", (trial,), 0, prune)
        outcome, seconds = executor.run(work)
        if "error" not in outcome:
            charge_extraction(out, outcome)
        how = {"trial": number, "params": values, "isolated": executor.isolated(work)}
        row = record(out, Row.of(job, outcome, seconds, out, **how))
        say(f"[trial {number + 1}/{plan.search.trials}] {summary_line(row)}")
        say(board.finish())
        return row

    def search(plan: SearchPlan) -> SearchResult:
        size = f" at {plan.train_size} train" if plan.train_size is not None else ""
        keys = ", ".join(plan.search.space)
        say(f"compare: searching {plan.variant} / {plan.encoder}{size}: {plan.search.trials} trials over {keys}")
        at_once = executor.slots(resource_kind(plan.trial(first_values(plan.search.space), 0)))
        result = run_search(plan, rows, run_trial, config.compare.seeds[0], at_once, executor.cancel)
        chose = shown_values(result.values) if result.values else "nothing (no trial finished)"
        say(f"compare: {plan.variant}{size} chose {chose} ({result.trials} trials, {result.seconds:,.0f} s)")
        return result

    found = fan_out(plans, search, executor.slots(), executor.cancel)
    return {plan.key: result for plan, result in zip(plans, found)}


def _key(row: Row) -> tuple[str, str, int, str | None]:
    return (row.variant, row.encoder, row.seed, row.config_hash)


def extraction_groups(todo: Iterable[Job], side_by_side: bool = False) -> list[list[Job]]:
    """Feature-based rows grouped by everything their features depend on but the layers: each group's
    union of layers is extracted once, up front. (A group whose rows all want the same layers needs no
    such step when rows run one after another: its first run extracts them, and the others find that cache.
    Rows run ``side_by_side`` would all extract them at once, so there it takes two rows or more.)"""
    groups: dict[str, list[Job]] = {}
    for job in todo:
        c = job.config
        if c.strategy != "feature" or c.encoder.model in BASELINES:
            continue
        features = c.features.model_dump(mode="json", exclude={"layers", "combine", "window_pooling"})
        key = {"encoder": c.encoder.model_dump(mode="json"), "features": features, "task": c.task}
        key |= {"data": c.data.model_dump(mode="json"), "qa": c.qa.model_dump(mode="json"), "cache": c.cache_dir}
        groups.setdefault(json.dumps(key, sort_keys=True), []).append(job)

    def shared(group: list[Job]) -> bool:
        return len({str(j.config.features.layers) for j in group}) > 1 or (side_by_side and len(group) > 1)

    return [group for group in groups.values() if shared(group)]
