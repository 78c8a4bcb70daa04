"""One row of a comparison's results.jsonl: a variant on an encoder with one seed (and training-set size),
a search's trial, or a failed attempt at either. Built in one place (``Row.of``, from a job and what its
child measured) and read by attribute everywhere in ``compare/``.

Its JSON form carries ``"version": ROW_VERSION``. Rows without one were written by lmtransfer before rows
were typed; they have the same keys and load as they are. Keys this release does not know are kept in
``extra`` and written back unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lmtransfer.config.variants import Job

ROW_VERSION = 1


@dataclass
class Row:
    """What one attempt at a job ran and measured; the measurements are None (or empty) where it failed."""

    variant: str
    encoder: str
    seed: int
    train_size: int | str | None = None  # the compare.train_sizes entry (None: sizes not swept)
    position: int | None = None  # its place among the comparison's rows: the report's order, whatever order
    # the rows finished in (None: a trial, or a row from before rows knew it)
    config_hash: str | None = None  # the job's; a row with the same identity and hash is not run again
    status: str = "ok"  # ok, or failed
    run_dir: str | None = None
    date: str | None = None
    child_seconds: float | None = None  # the child process, start to end
    strategy: str | None = None  # the registered way (runs.kinds.WAYS) that trained it
    error: str | None = None
    traceback: str | None = None
    task: str | None = None
    metric: str | None = None  # the dev metric it was trained and is compared by
    dev: dict[str, float] | None = None
    test: dict[str, float] | None = None
    seconds: dict[str, float | None] = field(default_factory=dict)  # extraction, training, evaluation, wall ...
    extraction_shared: bool | None = None
    caches: dict[str, str] = field(default_factory=dict)
    peak_rss_bytes: int | None = None
    cache_bytes: int | None = None
    trainable_parameters: int | None = None
    inference: dict[str, Any] | None = None  # live prediction timed: examples, seconds, examples_per_second
    sizes: dict[str, int] = field(default_factory=dict)
    labelled_examples: int | None = None  # whose labels the run used: train, or a prompt's demonstrations
    prompt_tokens: float | None = None  # a prompt row: the tokens the model reads per example
    best_epoch: int | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    pruned_step: int | None = None
    pruned_epoch: int | None = None  # (trials from before training counted steps)
    convergence: dict[str, Any] | None = None  # training.convergence.Convergence's JSON
    layer_weights: dict[str, Any] | None = None
    units: dict[str, str] = field(default_factory=dict)  # split -> its evaluation units' file
    intervals: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # this seed's alone
    adopt_seconds: float | None = None
    extension: int = 0  # times the budget was doubled before this attempt
    adopted_trial: int | None = None
    search: dict[str, Any] | None = None  # what the variant's search chose and cost
    trial: int | None = None  # a search's trial: its number
    params: dict[str, Any] | None = None  # a trial's values
    isolated: bool | None = None  # a trial run in a child of its own
    extra: dict[str, Any] = field(default_factory=dict)  # keys this release does not know

    @classmethod
    def of(cls, job: Job, outcome: dict[str, Any], seconds: float, out: Path | None = None, **how: Any) -> Row:
        """The row of one job: its identity, then what its child measured (``outcome``, or its error), then
        ``how`` compare ran it (extension, trial ...). Its units' files are named relative to the
        comparison folder ``out`` where they lie in it, so that the folder can be moved and its report
        rebuilt."""
        identity = {"variant": job.variant, "encoder": job.encoder, "seed": job.seed, "train_size": job.train_size}
        identity["position"] = job.position
        identity |= {"config_hash": job.config_hash, "status": "failed" if "error" in outcome else "ok"}
        identity |= {"run_dir": job.config.output_dir, "child_seconds": seconds}
        identity["date"] = datetime.now(UTC).isoformat(timespec="seconds")
        if "error" in outcome:
            measured = {"strategy": job.config.strategy, "error": outcome["error"]}
            measured["traceback"] = outcome.get("traceback")
        elif out is not None and outcome.get("units"):
            measured = outcome | {"units": {k: _relative(Path(v), out) for k, v in outcome["units"].items()}}
        else:
            measured = outcome
        return cls.from_json(identity | measured | how)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Row:
        """A row from its JSON form, versioned or written before rows had a version."""
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {k: v for k, v in data.items() if k in known}
        extra = {k: v for k, v in data.items() if k not in known and k != "version"}
        for name in ("seconds", "caches", "sizes", "history", "units", "intervals"):
            if values.get(name) is None:  # (a null in an old row: none measured)
                values.pop(name, None)
        if values.get("extension") is None:
            values.pop("extension", None)
        return cls(**values, extra=extra)

    def to_json(self) -> dict[str, Any]:
        """The results.jsonl line: the version, then every field that holds something, then the extra keys."""
        out: dict[str, Any] = {"version": ROW_VERSION}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name != "extra" and value is not None and value != {} and value != []:
                out[f.name] = value
        return out | self.extra

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def is_trial(self) -> bool:
        return self.trial is not None

    @property
    def pruned(self) -> bool:
        return self.pruned_step is not None or self.pruned_epoch is not None

    @property
    def converged(self) -> bool | None:
        """Whether its run converged (None: it cannot tell, as for a baseline or a row from before)."""
        return (self.convergence or {}).get("converged")

    def dev_value(self, metric: str) -> float | None:
        value = (self.dev or {}).get(metric)
        return float(value) if isinstance(value, int | float) else None


def _relative(path: Path, out: Path) -> str:
    try:
        return str(path.resolve().relative_to(out.resolve()))
    except ValueError:
        return str(path.resolve())
