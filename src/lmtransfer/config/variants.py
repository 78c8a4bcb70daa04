"""A compare config expanded into its rows: one run config per variant x encoder x seed, all checked at load.

A variant is the base run with the dotted ``set`` keys changed, exactly as ``--set`` would change
them, applied to the config as written (so a variant that sets ``strategy: finetune`` gets the
fine-tuning defaults, not the base's resolved feature-based ones). A variant is crossed with every
``compare.encoders`` unless it says ``encoders: false`` or sets ``encoder.model`` itself (a baseline,
static vectors).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmtransfer.config.build import build, set_dotted
from lmtransfer.config.compare_schema import RangeConfig, SearchConfig, VariantConfig
from lmtransfer.config.layers import resolve_layers
from lmtransfer.config.schema import RunConfig
from lmtransfer.config.source import ConfigSource
from lmtransfer.config.variant_errors import search_error, variant_error
from lmtransfer.core.choices import BASELINES, UNTRAINED
from lmtransfer.core.errors import ConfigError

# Fields that do not change what a run computes: left out of its config hash.
UNHASHED: dict[str, Any] = {
    "output_dir": True,
    "cache_dir": True,
    "compare": True,
    "train": {"report_to", "logging_steps", "experiment", "tags", "score_test"},
}
BASE = VariantConfig(name="base")
# What a search without a space of its own searches, per strategy: the learning rate and the training length
# (train.min_steps: the fewest optimizer steps, which matter most at small training sizes), both log-uniform.
DEFAULT_SPACES: dict[str, dict[str, RangeConfig]] = {
    "feature": {
        "train.lr": RangeConfig(low=1e-3, high=3e-2, log=True),
        "train.min_steps": RangeConfig(low=150, high=1200, log=True, integer=True),
    },
    "finetune": {
        "train.lr": RangeConfig(low=1e-5, high=3e-4, log=True),
        "train.min_steps": RangeConfig(low=50, high=400, log=True, integer=True),
    },
    "lora": {
        "train.lr": RangeConfig(low=1e-4, high=3e-3, log=True),
        "train.min_steps": RangeConfig(low=50, high=400, log=True, integer=True),
    },
}


@dataclass(frozen=True)
class Job:
    """One row of a comparison."""

    variant: str
    encoder: str
    seed: int
    config: RunConfig
    train_size: int | str | None = None  # a size of compare.train_sizes (a number, or "all"); None: not swept
    position: int | None = None  # its place among the comparison's rows (``jobs``' order); None: a search's trial

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)

    @property
    def key(self) -> tuple[str, str, int, str]:
        return (self.variant, self.encoder, self.seed, self.config_hash)


def config_hash(config: RunConfig) -> str:
    """sha256 (16 hex digits) of the resolved config, without the fields that only say where things go."""
    text = json.dumps(config.model_dump(mode="json", exclude=UNHASHED), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def slug(text: str) -> str:
    """A folder name for an encoder value (a path, a hub id, an alias)."""
    name = Path(text.rstrip("/")).name or text
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", name).strip("-.") or "encoder"


def bind_variants(config: RunConfig, data: dict[str, Any], source: ConfigSource | None) -> None:
    """Keep the base run as written on ``config.compare`` and check every row it expands to."""
    compare = config.compare
    assert compare is not None
    compare._base = {k: copy.deepcopy(v) for k, v in data.items() if k != "compare"}
    compare._source = source
    jobs(config)
    for plan in search_plans(config):  # every searched key, at its first value, makes a valid run
        plan.trial(first_values(plan.search.space), 0)


def _base_data(config: RunConfig) -> dict[str, Any]:
    compare = config.compare
    if compare is not None and compare._base is not None:
        return copy.deepcopy(compare._base)
    return config.model_dump(mode="json", exclude_unset=True, exclude={"compare"})  # built in Python


Chosen = dict[tuple[str, str, Any], dict[str, Any]]  # (variant, encoder, train size) -> what its search chose


def _sizes(config: RunConfig) -> list[int | str | None]:
    assert config.compare is not None
    sizes: list[int | str | None] = list(config.compare.train_sizes or [None])
    return sorted(sizes, key=lambda s: float("inf") if s == "all" else (s or 0))


def jobs(config: RunConfig, chosen: Chosen | None = None) -> list[Job]:
    """Every row of the comparison, in order: training-set size (smallest first), then variant, encoder and
    seed; a searched variant with what its search chose (``chosen``) set on top. Raises a ConfigError that
    names the variant, the field and (for a file) its line for the first row that does not validate."""
    compare = config.compare
    if compare is None:
        raise ConfigError("this config has no compare section", field="compare")
    base = _base_data(config)
    out = []
    for size, index, variant, encoder in _cells(config):
        for seed in compare.seeds:
            at = size
            built = _variant_config(config, base, index, variant, encoder, seed, at)
            if built.strategy in UNTRAINED and at is not None:  # the same whatever the size: run once, unsized
                if at != _sizes(config)[0]:
                    continue
                at, built = None, _variant_config(config, base, index, variant, encoder, seed, None)
            extra = (chosen or {}).get((variant.name, built.encoder.model, at))
            if extra:
                built = _variant_config(config, base, index, variant, encoder, seed, at, extra)
            out.append(Job(variant.name, built.encoder.model, seed, built, at, position=len(out)))
    return out


def _cells(config: RunConfig) -> Iterator[tuple[int | str | None, int, VariantConfig, str | None]]:
    """(training-set size, variant index, variant, encoder or None for its own) in row order."""
    compare = config.compare
    assert compare is not None
    for size in _sizes(config):
        for index, variant in enumerate(compare.variants or [BASE]):
            own = "encoder.model" in variant.set or not variant.encoders
            for encoder in [None] if own else compare.encoders or [config.encoder.model]:
                yield size, index, variant, encoder


@dataclass(frozen=True)
class SearchPlan:
    """The search of one variant on one encoder at one training-set size: its space and budget, and how a
    trial's values become a run config (the first seed, dev alone, its own folder)."""

    variant: str
    encoder: str
    train_size: int | str | None
    search: SearchConfig
    config: RunConfig  # the comparison's
    index: int
    encoder_arg: str | None

    @property
    def key(self) -> tuple[str, str, Any]:
        return (self.variant, self.encoder, self.train_size)

    def trial(self, values: dict[str, Any], number: int) -> RunConfig:
        compare = self.config.compare
        assert compare is not None
        variant = (compare.variants or [BASE])[self.index]
        extra = {**values, "train.score_test": False}
        return _variant_config(
            self.config,
            _base_data(self.config),
            self.index,
            variant,
            self.encoder_arg,
            compare.seeds[0],
            self.train_size,
            extra,
            trial=number,
        )


def search_plans(config: RunConfig) -> list[SearchPlan]:
    """The searches of the comparison, in row order: each variant with a search of its own, and, with
    ``compare.search``, every other variant it names (default: all but the baselines)."""
    compare = config.compare
    if compare is None:
        return []
    base = _base_data(config)
    plans = []
    for size, index, variant, encoder in _cells(config):
        built = _variant_config(config, base, index, variant, encoder, compare.seeds[0], size)
        if built.strategy in UNTRAINED:  # nothing trains, so nothing is tuned by dev
            continue
        search = variant.search
        wanted = compare.search is not None and (
            variant.name in compare.search.variants
            if compare.search.variants is not None
            else built.encoder.model not in BASELINES
        )
        if search is None and wanted:
            search = compare.search
        if search is not None and not search.space and built.encoder.model not in BASELINES:
            search = search.model_copy(update={"space": DEFAULT_SPACES[built.strategy]})  # the way's own
        if search is not None and search.space:
            plans.append(SearchPlan(variant.name, built.encoder.model, size, search, config, index, encoder))
    return plans


def first_values(space: dict[str, list[Any] | RangeConfig]) -> dict[str, Any]:
    """Each searched key at its first value (a range: its low end)."""
    return {k: v[0] if isinstance(v, list) else v.low for k, v in space.items()}


def grid(space: dict[str, list[Any] | RangeConfig]) -> list[dict[str, Any]] | None:
    """Every combination of the values, where each key lists its values; None where one is a range."""
    if any(isinstance(v, RangeConfig) for v in space.values()):
        return None
    combos: list[dict[str, Any]] = [{}]
    for key, values in space.items():
        combos = [{**c, key: v} for c in combos for v in values]  # type: ignore[union-attr]
    return combos


def _variant_config(
    config: RunConfig,
    base: dict[str, Any],
    index: int,
    variant: VariantConfig,
    encoder: str | None,
    seed: int,
    size: int | str | None = None,
    extra: dict[str, Any] | None = None,
    trial: int | None = None,
) -> RunConfig:
    data = copy.deepcopy(base)
    try:
        for key, value in variant.set.items():
            set_dotted(data, key, copy.deepcopy(value))
        if size is not None:  # the sweep's size wins over a variant's own (nested subsets, data.split_seed)
            set_dotted(data, "data.max_train_examples", None if size == "all" else size)
    except ConfigError as exc:
        raise variant_error(config, index, variant, exc.field or "set", exc.message) from None
    try:
        for key, value in (extra or {}).items():  # what a search tries or chose
            set_dotted(data, key, copy.deepcopy(value))
    except ConfigError as exc:
        raise search_error(config, index, variant, exc.field or "search", exc.message) from None
    if encoder is not None:
        set_dotted(data, "encoder.model", encoder)
    set_dotted(data, "train.seed", seed)
    compare = config.compare
    assert compare is not None
    model = encoder or str((data.get("encoder") or {}).get("model", config.encoder.model))
    where = Path(compare.output_dir) / "runs" / variant.name / slug(model)
    leaf = f"trial-{trial}" if trial is not None else f"seed-{seed}"
    data["output_dir"] = str(where / (f"n-{size}" if size is not None else "") / leaf)
    _track_as_row(data, compare.output_dir, variant.name, model, seed)
    try:
        built = build(data)
        resolve_layers(built.features.layers, 10_000)  # the spec's form; the range is checked once loaded
    except ConfigError as exc:
        searched = exc.field and any(exc.field == k or exc.field.startswith(f"{k}.") for k in extra or {})
        if searched and exc.field != "train.score_test":
            raise search_error(config, index, variant, exc.field, exc.message) from None
        raise variant_error(config, index, variant, exc.field or "(top level)", exc.message) from None
    except ValueError as exc:
        raise variant_error(config, index, variant, "features.layers", str(exc)) from None
    return built


def _track_as_row(data: dict[str, Any], output_dir: str, variant: str, encoder: str, seed: int) -> None:
    """Every row of a comparison goes to the trackers as a run of one experiment (the comparison folder's
    name, unless the config names one), tagged with its variant, encoder, seed and training-set size."""
    train, given = data.setdefault("train", {}), data.get("data")
    if not isinstance(train, dict) or not isinstance(train.get("tags") or {}, dict):
        return  # not a section: validation names it
    train.setdefault("experiment", Path(output_dir).name)
    size = (given.get("max_train_examples") if isinstance(given, dict) else None) or "all"
    tags = {"variant": variant, "encoder": encoder, "seed": str(seed), "train_size": str(size)}
    train["tags"] = {**(train.get("tags") or {}), **tags}
