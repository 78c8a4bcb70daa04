"""The standard comparison of ``lmtransfer compare DATA``: on the user's own table, a TF-IDF baseline,
feature-based (a scalar mix of every layer, searched over the one extraction) and fine-tuning (searched),
each with the converged budgets, at training sizes chosen from the data; as the config a user could have
written (``lmtransfer init`` writes it out, commented).
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from lmtransfer.data.inspect import TableFacts

FIRST_SIZE = 50  # the smallest training size of a standard comparison
SIZE_STEP = math.sqrt(10)  # sizes grow by half a decade: 50, 160, 500, 1,600, ...
HELD_OUT = 0.1  # the share of the file held out for dev, and for test, where no file is given for them
# what each way searches (learning rate and training length), around the converged budgets of
# docs/benchmarks.md; with one trial a way runs at the geometric middle of its ranges instead
SPACES: dict[str, dict[str, dict[str, Any]]] = {
    "mix-all": {
        "train.lr": {"low": 2.0e-3, "high": 2.0e-2, "log": True},
        "train.min_steps": {"low": 150, "high": 600, "log": True, "integer": True},
    },
    "finetune": {
        "train.lr": {"low": 3.0e-5, "high": 3.0e-4, "log": True},
        "train.min_steps": {"low": 60, "high": 240, "log": True, "integer": True},
    },
}
PROMPT_SHOTS = (0, 4)  # --prompt MODEL: the causal LM prompted with no demonstration, then with 4
FINETUNE = {  # the fine-tuned way: the whole encoder and a linear head on its last block
    "strategy": "finetune",
    "features.layers": "last",
    "train.epochs": 4,
    "train.batch_size": 16,
    "train.head_lr": 5.0e-3,
    "train.warmup_ratio": 0.1,
}


@dataclass(frozen=True)
class Plan:
    """What ``compare DATA`` will run: the table's facts, the encoder, the training sizes, the trials per
    search, where it writes, and how many examples train, dev and test hold."""

    facts: TableFacts
    model: str
    max_length: int
    sizes: tuple[int | str, ...]
    trials: int
    output: str
    counts: tuple[int, int, int]  # (train, dev, test) examples
    dev: str | None = None
    test: str | None = None
    seed: int = 13
    extensions: int | None = None  # reruns of a row that did not converge (None: compare's default); 1 under a budget
    prompt: str | None = None  # a causal LM to prompt beside the trained ways, with the encoder's zero-shot labels

    def with_(self, **changes: Any) -> Plan:
        return replace(self, **changes)

    def size_numbers(self) -> list[int]:
        """The training sizes as numbers of examples (``all`` is the whole training split)."""
        return [self.counts[0] if size == "all" else int(size) for size in self.sizes]


def held_out_counts(rows: int, dev_rows: int | None, test_rows: int | None) -> tuple[int, int, int]:
    """(train, dev, test) sizes of a file of ``rows`` from which dev and test are held out where no file gives them
    (``data/splits.make_splits``: test first, then dev from what is left, each ``HELD_OUT`` of the file)."""
    test = test_rows if test_rows is not None else math.ceil(rows * HELD_OUT)
    left = rows - (0 if test_rows is not None else test)
    share = HELD_OUT if test_rows is not None else HELD_OUT / (1 - HELD_OUT)
    dev = dev_rows if dev_rows is not None else math.ceil(left * share)
    return left - (0 if dev_rows is not None else dev), dev, test


def sizes_for(train: int, labels: int = 0) -> tuple[int | str, ...]:
    """Training sizes spaced by half a decade from ``FIRST_SIZE`` (or 5 examples a label, where more), then
    ``all``: 1,600 examples give (50, 160, 500, all). A size within a third of the whole is left to ``all``."""
    sizes: list[int | str] = []
    size = float(max(FIRST_SIZE, 5 * labels))
    while _two_digits(size) * 1.5 < train:
        sizes.append(_two_digits(size))
        size *= SIZE_STEP
    return (*sizes, "all")


def _two_digits(value: float) -> int:
    """``value`` rounded to two significant digits: 158.1 -> 160, 15,811 -> 16,000."""
    return int(round(value, 2 - len(str(int(value)))))


def config_data(plan: Plan) -> dict[str, Any]:
    """The run config with its ``compare`` section that runs ``plan``, as YAML data."""
    facts = plan.facts
    data = dict(facts.data_fields)
    if plan.dev:
        data["dev"] = plan.dev
    if plan.test:
        data["test"] = plan.test
    for split in ("train", "dev", "test"):  # wherever the config is run from
        if split in data:
            data[split] = str(Path(data[split]).resolve())
    variants: list[dict[str, Any]] = [{"name": "tfidf", "set": {"encoder.model": "tfidf"}}]
    for name, fixed in (("mix-all", {}), ("finetune", FINETUNE)):
        variant: dict[str, Any] = {"name": name}
        settings = dict(fixed)
        if plan.trials == 1:  # one trial: the middle of the space, no search
            settings |= {key: middle(**space) for key, space in SPACES[name].items()}
        if settings:
            variant["set"] = settings
        if plan.trials > 1:
            variant["search"] = {"trials": plan.trials, "space": SPACES[name]}
        variants.append(variant)
    variants += untrained_variants(plan)
    prompt = {"prompt": {"verbalizer": {label: label for label in facts.labels}}} if plan.prompt else {}
    return {
        "task": facts.task,
        "encoder": {"model": plan.model, "max_length": plan.max_length},
        "features": {"layers": "all", "pooling": "mean"},
        "data": data,
        "head": {"type": "linear"},
        **prompt,
        "output_dir": f"{plan.output}/base",
        "compare": {
            "seeds": [plan.seed],
            "train_sizes": list(plan.sizes),
            "output_dir": plan.output,
            "inference_examples": 100,
            **({"extensions": plan.extensions} if plan.extensions is not None else {}),
            "variants": variants,
        },
    }


def untrained_variants(plan: Plan) -> list[dict[str, Any]]:
    """What ``--prompt MODEL`` adds, each run once whatever the training size: the encoder's nearest label
    name (zero-shot; single texts only) and MODEL prompted with ``PROMPT_SHOTS`` demonstrations."""
    if plan.prompt is None:
        return []
    zero = [] if plan.facts.text_pair_column else [{"name": "zero-shot", "set": {"strategy": "zero-shot"}}]
    prompts = [
        {"name": f"prompt-{shots}", "set": {"strategy": "prompt", "encoder.model": plan.prompt, "prompt.shots": shots}}
        for shots in PROMPT_SHOTS
    ]
    return zero + prompts


def ways_line(plan: Plan) -> str:
    """The plan's ways, as the plan prints them."""
    line = "tfidf, mix-all (feature-based) and finetune at training sizes " + ", ".join(map(str, plan.sizes))
    if plan.prompt is not None:
        names = [v["name"] for v in untrained_variants(plan)]
        line += f"; once each, untrained: {', '.join(names)} ({plan.prompt} prompted)"
    return line


def middle(low: float, high: float, log: bool = False, integer: bool = False) -> float | int:
    """The middle of a searched range (geometric where it is searched on a log scale): one trial's value."""
    value = math.sqrt(low * high) if log else (low + high) / 2
    return round(value) if integer else float(f"{value:.2g}")


class _Dumper(yaml.SafeDumper):
    """Sections as blocks; lists and searched ranges on one line each."""


def _list(dumper: yaml.SafeDumper, value: list) -> yaml.Node:
    flow = all(not isinstance(item, dict | list) for item in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


def _dict(dumper: yaml.SafeDumper, value: dict) -> yaml.Node:
    flow = set(value) <= {"low", "high", "log", "integer"}
    return dumper.represent_mapping("tag:yaml.org,2002:map", value.items(), flow_style=flow)


_Dumper.add_representer(list, _list)
_Dumper.add_representer(dict, _dict)


def config_yaml(plan: Plan, command: str, note: str = "") -> str:
    """``config_data(plan)`` as a commented YAML file: what made it, what each part is for, how to run it."""
    data = config_data(plan)
    facts = plan.facts
    sections = {
        "task": f"found from the data: {facts.reason}",
        "encoder": f"max_length: the 95th percentile of the texts' lengths in tokens ({plan.max_length})",
        "features": "the feature-based way: a learned scalar mix of every layer, mean-pooled",
        "data": "dev and test: held out of train (10% each) where no file is given; data.split_seed fixes them",
        "head": None,
        "prompt": "the words each label is scored by when prompted, and the description zero-shot embeds: the "
        "labels as written; words that say what a label means do better (positive, not 1)",
        "output_dir": "the base run, when this file is given to `lmtransfer train`",
        "compare": "three ways at each training size (nested subsets of train, the same for every way): the "
        "TF-IDF baseline, feature-based, fine-tuning; each way's search is by dev alone, and every run trains "
        "until its dev curve converges (or is reported as under-trained)"
        + (
            f"; the untrained variants (zero-shot: the nearest label name; prompt-K: {plan.prompt} prompted with K "
            "demonstrations) run once, beside every size; prompt.verbalizer gives the labels words to score"
            if plan.prompt
            else ""
        ),
    }
    lines = [
        f"# Written by: {command}",
        f"# Run it with: lmtransfer compare {plan.output}/compare.yaml   (a rerun skips the rows already done)",
        *(f"# {line}" for line in note.splitlines()),
        "",
    ]
    for key, value in data.items():
        if sections.get(key):
            lines += [f"# {line}" for line in textwrap.wrap(sections[key], 108)]
        lines.append(yaml.dump({key: value}, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110).rstrip())
        lines.append("")
    return "\n".join(lines)
