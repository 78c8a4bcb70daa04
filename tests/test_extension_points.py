"""What docs/architecture.md's "Where to add" says, done: a task and a head, each written in a package of
its own that registers itself on import, train and predict on the tiny encoder, with nothing else changed."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap

import pytest
from click.testing import CliRunner

from lmtransfer import load_config, train
from lmtransfer.cli.main import cli
from lmtransfer.core import choices
from lmtransfer.core.errors import ConfigError
from lmtransfer.nn import heads
from lmtransfer.tasks import table

# a plug-in as a user would write it: one module, its registrations at the bottom
TOY_PLUGIN = '''
import torch
from torch import nn

from lmtransfer.core.errors import ConfigError
from lmtransfer.nn.heads import register_head
from lmtransfer.tasks.table import register_task
from lmtransfer.tasks.text import ClassificationTask


class ShoutedTask(ClassificationTask):
    """Classification of texts read upper-cased, answered as the shout and its label."""

    name = "shouted"
    metrics = ("accuracy", "macro_f1")
    pipeline_tag = "text-classification"

    def parse_argument(self, argument):
        return argument.upper()

    def example_argument(self):
        return "WHAT A FILM"

    def prediction_row(self, item, found):
        return {"shout": item, **found}

    def fit_bag_of_words(self, x, targets, seed):
        raise ConfigError("a shout has no bag of words", field="encoder.model")


class MeanOfMaxHead(nn.Module):
    """Scores from the mean and the max of the text's features: a head no built-in has."""

    def __init__(self, in_dim, num_outputs, options):
        super().__init__()
        self.out = nn.Linear(2, num_outputs)

    def forward(self, x):
        return self.out(torch.stack([x.mean(-1), x.amax(-1)], dim=-1))


register_task(ShoutedTask, granularity="sentence", heads=("linear", "mean-of-max"))
register_head("mean-of-max", MeanOfMaxHead, tasks=("shouted", "classification"))
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The toy plug-in imported from a package of its own; every registration undone afterwards (the
    registries are restored in place, as modules that imported them by name hold the same objects)."""
    registries = (
        choices.TASK_GRANULARITY,
        choices.TASK_METRICS,
        choices.TASK_HEADS,
        table.TASKS,
        heads.WHOLE_TEXT_HEADS,
    )
    saved = [dict(registry) for registry in registries]
    package = tmp_path / "toy_plugin"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(TOY_PLUGIN), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module("toy_plugin")
    sys.modules.pop("toy_plugin", None)
    for registry, before in zip(registries, saved):
        registry.clear()
        registry.update(before)


def test_a_task_from_a_plugin_trains_predicts_and_has_its_card(plugin, run_overrides, tmp_path):
    config = load_config(None, [*run_overrides, "task=shouted"])
    assert config.train.metric == "accuracy" and config.features.granularity == "sentence"
    result = train(config, progress=False)
    run = tmp_path / "run"
    assert set(result.metrics["dev"]) >= {"accuracy", "macro_f1"}
    card = (run / "README.md").read_text(encoding="utf-8")
    assert "pipeline_tag: text-classification" in card and "lmtransfer predict" in card and '"WHAT A FILM"' in card

    answer = CliRunner().invoke(cli, ["predict", str(run), "the movie was great"])
    assert answer.exit_code == 0, answer.output
    row = json.loads(answer.output.splitlines()[0])
    assert row["shout"] == "THE MOVIE WAS GREAT" and row["label"] in {"pos", "neg", "biz"}


def test_a_task_refuses_the_baseline_through_its_own_hook(plugin, run_overrides, tmp_path):
    config = load_config(None, [*run_overrides, "task=shouted", "encoder.model=tfidf"])
    with pytest.raises(ConfigError, match="a shout has no bag of words"):
        train(config, progress=False)
    assert not (tmp_path / "run").exists()  # refused before anything was written


@pytest.mark.parametrize("strategy", ["feature", "finetune"])
def test_a_head_from_a_plugin_trains_both_ways(plugin, run_overrides, tmp_path, strategy):
    config = load_config(None, [*run_overrides, "head.type=mean-of-max", f"strategy={strategy}"])
    result = train(config, progress=False)
    assert 0.0 <= result.metrics["test"]["accuracy"] <= 1.0
    assert "mean-of-max" in (tmp_path / "run" / "config.yaml").read_text(encoding="utf-8")


def test_a_head_is_refused_where_it_is_not_registered(plugin, run_overrides):
    with pytest.raises(ConfigError, match=r"head\.type"):
        load_config(None, [*run_overrides, "task=regression", "head.type=mean-of-max"])
