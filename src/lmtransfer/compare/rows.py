"""One row of a comparison, run until it is settled: trained in its own process, or adopted from the search
trial that trained the same run; then, while its run has not converged, run again with twice the optimizer
steps, up to ``compare.extensions`` times. Every attempt is a row of results.jsonl under the job's config
hash (with its ``extension``), so a resumed comparison goes on from the latest."""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

from lmtransfer.compare.execute import RESULTS, Executor, Work, charge_extraction, say, summary_line
from lmtransfer.compare.row import Row
from lmtransfer.compare.search import SearchResult
from lmtransfer.config.build import changed
from lmtransfer.config.schema import RunConfig
from lmtransfer.config.variants import Job
from lmtransfer.core.atomic import append_jsonl


@dataclass
class Rows:
    """How the rows of one comparison run: where, with which searches' results, and the extensions' cap."""

    out: Path
    executor: Executor
    inference_examples: int
    cap: int
    searched: dict[tuple, SearchResult]

    def settle(self, job: Job, earlier: Row | None, tag: str) -> Row:
        """The row of ``job`` once settled, from ``earlier`` (its latest finished attempt) where there is one."""
        row = earlier
        trial = adoptable(self.searched.get(plan_key(job)), job) if row is None else None
        if trial is not None:
            say(f"{tag} the same run as its search's trial {trial.trial + 1}: adopted, test scored")
            row = self.adopt(job, trial)
            say(f"{tag} {summary_line(row)}")
        elif row is None:
            row = self.train(job, 0, job.config)
            say(f"{tag} {summary_line(row)}")
        while extend(row, self.cap):  # not converged: twice the optimizer steps, up to the cap
            steps, extension = 2 * row.convergence["budget_steps"], row.extension + 1
            say(f"{tag} again with {steps:,} optimizer steps (doubling {extension} of {self.cap})")
            row = self.train(job, extension, changed(job.config, {"train.min_steps": steps}))
            say(f"{tag} {summary_line(row)}")
        return row

    def train(self, job: Job, extension: int, run: RunConfig) -> Row:
        """Train ``run`` (the job's config, or it with a longer budget) and record its row."""
        outcome, seconds = self.executor.run(Work("row", (run,), self.inference_examples))
        if "error" not in outcome:
            charge_extraction(self.out, outcome)
        # the row's identity is the job's, whatever budget it ran
        row = Row.of(
            replace(job, config=run), outcome, seconds, self.out, config_hash=job.config_hash, extension=extension
        )
        return self._record(job, row)

    def adopt(self, job: Job, trial: Row) -> Row:
        """The job's row from ``trial``'s run (``runs.adopt``), keeping what its training measured."""
        found, seconds = self.executor.run(
            Work("adopt", (job.config,), self.inference_examples, trial_dir=trial.run_dir)
        )
        if "error" in found:  # not fatal: the row trains its run as usual
            warnings.warn(f"adopting trial {trial.trial} failed ({found['error']}); training the row", stacklevel=2)
            return self.train(job, 0, job.config)
        measured = {k: getattr(trial, k) for k in TRIAL_MEASURES}  # what training took: the trial's own
        row = Row.of(job, measured | found, seconds, self.out, adopted_trial=trial.trial)
        return self._record(job, row)

    def _record(self, job: Job, row: Row) -> Row:
        found = self.searched.get(plan_key(job))
        if found is not None:  # what its search chose, and what the search cost
            row.search = found.to_json()
        return record(self.out, row)


_RESULTS = threading.Lock()  # rows finish in threads of the driver when jobs run side by side (Ray)


def record(out: Path, row: Row) -> Row:
    """Append ``row`` to the comparison's results.jsonl: the driver alone writes it, a whole row at a time."""
    with _RESULTS:
        append_jsonl(out / RESULTS, row.to_json())
    return row


# What a trial's row measured of training, which the row adopting its run keeps (test, units, intervals, the
# timed prediction and the sizes with test counted come from the adopting child).
TRIAL_MEASURES = (
    "strategy", "task", "metric", "dev", "seconds", "extraction_shared", "caches", "peak_rss_bytes", "cache_bytes",
    "trainable_parameters", "sizes", "best_epoch", "history", "convergence", "layer_weights",
)  # fmt: skip


def plan_key(job: Job) -> tuple[str, str, int | str | None]:
    return (job.variant, job.encoder, job.train_size)


def adoptable(found: SearchResult | None, job: Job) -> Row | None:
    """The chosen trial whose run is this row's run, where the row may adopt it: the first seed's (the seed
    trials run on), the same config hash, run in a child of its own (so its peak memory is its own), and its
    folder still there."""
    trial = found.best if found is not None else None
    if trial is None or not trial.isolated or not trial.ok or trial.pruned:
        return None
    if trial.config_hash != job.config_hash or trial.seed != job.seed:
        return None
    return trial if (Path(trial.run_dir or "") / "metrics.json").is_file() else None


def settled(row: Row | None, cap: int) -> bool:
    """Whether a row's latest attempt is final: it finished and needs no longer budget."""
    return row is not None and row.ok and not extend(row, cap)


def extend(row: Row, cap: int) -> bool:
    """Whether a finished row runs again with twice the steps: its run did not converge (a baseline, a run
    without dev and a row from before convergence was recorded cannot tell), and the cap is not reached."""
    return row.ok and row.converged is False and row.extension < cap
