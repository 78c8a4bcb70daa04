"""The schema of a comparison (the `compare:` section): its variants, their searches and the searched ranges.

Checks that look at one section alone, as in ``lmtransfer.config.schema``; what depends on the run config
(a variant's dotted keys, their values) is checked when the variants are bound (``lmtransfer.config.variants``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from lmtransfer.config.section import Section
from lmtransfer.config.source import ConfigSource
from lmtransfer.core import choices as c

# what ``gpus: auto`` reserves of a GPU, by kind of job, where the Ray cluster has GPUs: a whole one to train an
# encoder or extract; a quarter for any other row (a head on cached features, whose live prediction is timed
# on the same device as a fine-tuned row's)
AUTO_GPUS = {"finetune": 1.0, "extraction": 1.0, "feature": 0.25}


class RangeConfig(Section):
    """A searched number between ``low`` and ``high`` (log-uniform with ``log``; whole numbers with ``integer``)."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> RangeConfig:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self


class SearchConfig(Section):
    """A search over dotted keys of a variant, choosing by dev alone (Optuna's TPE sampler; a grid, tried
    whole, where every key lists its values and the grid fits in ``trials``)."""

    trials: int = Field(10, ge=1, description="trials per variant (and encoder and training-set size)")
    space: dict[str, list[Any] | RangeConfig] = Field(
        default_factory=dict,
        description="dotted key -> a list of values, or {low, high, log, integer}; e.g. train.lr: {low: 1e-3, high: "
        "3e-2, log: true}; empty: the way's default space, its learning rate and train.min_steps "
        "(config/variants.DEFAULT_SPACES)",
    )
    variants: list[str] | None = Field(
        None, description="compare.search only: the variants it searches; default every one but the baselines"
    )
    prune: bool = Field(
        False,
        description="stop a trial after a dev evaluation whose metric is worse than the median of the earlier "
        "trials' at that optimizer step (Optuna's median pruner); a pruned trial is never chosen. Pays for "
        "fine-tuning trials",
    )
    prune_startup: int = Field(2, ge=1, description="finished trials of the search before any trial is pruned")
    prune_warmup: int = Field(1, ge=0, description="dev evaluations every trial has before it can be pruned")

    @field_validator("space", mode="before")
    @classmethod
    def _values(cls, space: Any) -> Any:
        """Each key's values: a non-empty list, or a range (a mapping), each error naming its key."""
        if not isinstance(space, dict):
            return space
        out: dict[str, Any] = {}
        for key, values in space.items():
            if isinstance(values, list) and not values:
                raise ValueError(f"{key}: an empty list of values")
            if isinstance(values, dict):
                try:
                    values = RangeConfig(**values)
                except ValidationError as exc:
                    problem = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
                    raise ValueError(f"{key}: {problem}") from None
            elif not isinstance(values, list | RangeConfig):
                raise ValueError(f"{key}: a list of values or a range {{low, high, log, integer}}")
            out[key] = values
        return out


class VariantConfig(Section):
    """One arm of a comparison: the base run with some fields changed (the dotted keys of ``--set``)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$", max_length=80, description="row label and folder name")
    set: dict[str, Any] = Field(default_factory=dict, description="dotted overrides of the base run, e.g. head.type")
    encoders: bool = Field(
        True, description="cross with compare.encoders; false (or a set encoder.model) runs it on its own encoder"
    )
    search: SearchConfig | None = Field(None, description="this variant's own search (instead of compare.search)")


class TaskResources(Section):
    """What Ray reserves for one job of a kind (``compare.executor: ray``)."""

    cpus: float = Field(1, gt=0, description="CPUs; the job's torch threads too (at least one)")
    gpus: Annotated[float, Field(ge=0)] | Literal["auto"] = Field(
        "auto",
        description="GPUs; a fraction shares one (0.25: four jobs on a GPU); auto: where the Ray cluster has GPUs, 1 "
        "for a fine-tuning row or an extraction and 0.25 for any other row, else none",
    )

    def reserved(self, kind: str, cluster_gpus: float) -> tuple[float, float]:
        """(CPUs, GPUs) a job of ``kind`` reserves on a cluster with ``cluster_gpus`` GPUs."""
        if self.gpus != "auto":
            return self.cpus, float(self.gpus)
        return self.cpus, AUTO_GPUS[kind] if cluster_gpus > 0 else 0.0


class ResourcesConfig(Section):
    """What each kind of job reserves on Ray (``core.choices.RESOURCE_KINDS``)."""

    finetune: TaskResources = Field(
        default_factory=TaskResources, description="a row or search trial of a way that trains its encoder"
    )
    feature: TaskResources = Field(
        default_factory=TaskResources, description="any other row or trial: a head on features, a baseline, a prompt"
    )
    extraction: TaskResources = Field(
        default_factory=TaskResources, description="a shared extraction (the union of feature-based rows' layers)"
    )

    def reserved(self, kind: str, cluster_gpus: float) -> tuple[float, float]:
        return getattr(self, kind).reserved(kind, cluster_gpus)


class CompareConfig(Section):
    """``lmtransfer compare``: every variant x encoder x seed of the base run is one row of results.jsonl."""

    encoders: list[str] | None = Field(None, min_length=1, description="encoder.model values; default: the base's")
    seeds: list[int] = Field(default_factory=lambda: [13], min_length=1, description="train.seed values")
    variants: list[VariantConfig] = Field(default_factory=list, description="default: the base run alone")
    output_dir: str = Field("runs/compare", description="results.jsonl, report.md, report.html and the runs")
    inference_examples: int = Field(
        500, ge=1, description="dev items whose live prediction (raw text in, labels out) is timed per row"
    )
    search: SearchConfig | None = Field(
        None, description="a search for every variant (but baselines) that has none of its own; see SearchConfig"
    )
    extensions: int = Field(
        2,
        ge=0,
        description="a row whose run did not converge (training.convergence's rule) runs again with twice the "
        "optimizer steps, at most this many times; a row still not converged then is under-trained, and the "
        "verdict leaves it out",
    )
    train_sizes: list[int | Literal["all"]] | None = Field(
        None,
        min_length=1,
        description="training-set sizes: every row runs at each, on nested seeded subsets of train (the same "
        "for every variant; dev and test stay whole); all: the whole training set",
    )

    executor: Literal[c.EXECUTORS] = Field(  # type: ignore[valid-type]
        "local",
        description="where rows and trials run: local (here, one after another, each in a child process); ray (Ray "
        "tasks side by side, on this machine or a cluster: pip install 'lmtransfer[ray]'); auto: ray where "
        "RAY_ADDRESS is set and ray is installed, else local",
    )
    ray_address: str | None = Field(
        None,
        description="executor ray: the cluster to join (host:port, ray://host:10001, auto); default: RAY_ADDRESS, "
        "else a Ray instance started on this machine for the comparison",
    )
    resources: ResourcesConfig = Field(
        default_factory=ResourcesConfig, description="executor ray: the CPUs and GPUs each kind of job reserves"
    )
    retries: int = Field(
        2,
        ge=0,
        description="executor ray: times a job whose worker was lost (killed, out of memory, its node gone) runs "
        "again; its row is recorded once",
    )

    # the base run as written (before defaults), and where it came from: what the variants are built from
    _base: dict[str, Any] | None = PrivateAttr(default=None)
    _source: ConfigSource | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _unique_names(self) -> CompareConfig:
        names = [v.name for v in self.variants]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"compare.variants: variant names must differ ({', '.join(twice)} twice)")
        sizes = self.train_sizes or []
        if any(s != "all" and s < 1 for s in sizes):
            raise ValueError("compare.train_sizes: sizes are numbers of training examples, at least 1, or all")
        if len(set(sizes)) < len(sizes):
            raise ValueError("compare.train_sizes: each size once")
        unknown = sorted(set(self.search.variants or []) - set(names)) if self.search else []
        if unknown:
            raise ValueError(f"compare.search.variants: no variant named {', '.join(unknown)}")
        return self
