"""Configs: defaults, overrides, and errors that name file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmtransfer.config.loading import load_config
from lmtransfer.config.schema import RunConfig
from lmtransfer.core.errors import ConfigError

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


def test_defaults_are_the_demo():
    config = load_config()
    assert config.encoder.model == "minilm" and config.data.source == "bbc"
    assert config.features.layers == "all" and config.features.dtype == "float16"
    assert config.head.type == "linear" and config.strategy == "feature"


def test_overrides_are_typed(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("head:\n  type: mlp\ntrain:\n  epochs: 4\n", encoding="utf-8")
    config = load_config(path, ["train.lr=3e-4", "features.layers=[-1, -2]", "data.train=x.csv"])
    assert config.head.type == "mlp" and config.train.epochs == 4 and config.train.lr == 3e-4
    assert config.features.layers == [-1, -2] and config.data.source == "files"


def test_mixed_precision_no_survives_yaml(tmp_path):
    """YAML reads a bare `no` as false; `mixed_precision: no` still means no mixed precision."""
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  mixed_precision: no\n", encoding="utf-8")
    assert load_config(path).train.mixed_precision == "no"
    assert load_config(None, ["train.mixed_precision=no"]).train.mixed_precision == "no"
    with pytest.raises(ConfigError, match=r"train\.mixed_precision"):
        load_config(None, ["train.mixed_precision=yes"])


def test_error_names_file_line_and_field(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("encoder:\n  model: minilm\nhead:\n  type: mlp\n  dropout: 2.5\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: line 5: field 'head.dropout': ")


def test_unknown_field_and_bad_override(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  epochs: 3\n  learning_rate: 0.1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"line 3: field 'train.learning_rate': Extra inputs"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"command line: field 'train.epochs=zero'"):
        load_config(None, ["train.epochs=zero"])
    with pytest.raises(ConfigError, match=r"section\.field=value"):
        load_config(None, ["oops"])


def test_pooling_must_fit_granularity(tmp_path):
    with pytest.raises(ConfigError, match=r"field 'features\.pooling=cls': 'cls' does not apply to granularity 'word'"):
        load_config(None, ["features.granularity=word", "features.pooling=cls"])
    path = tmp_path / "tag.yaml"  # the task sets the granularity; the pooling must fit it
    path.write_text("task: tagging\nfeatures:\n  pooling: max\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}: line 3: field 'features.pooling': 'max' does not apply to granularity 'word' "
        "(choose one of first, last, mean)"
    )
    assert load_config(path, ["features.pooling=mean"]).features.granularity == "word"


def test_yaml_syntax_error_has_a_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epochs: [1,\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"{path}: line \d+: not valid YAML"):
        load_config(path)


def test_resolved_config_round_trips():
    config = load_config(None, ["head.type=mlp"])
    import yaml

    again = RunConfig.model_validate(yaml.safe_load(config.to_yaml()))
    assert again.model_dump() == config.model_dump()


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_loads(path):
    config = load_config(path)
    assert path.read_text(encoding="utf-8").startswith("#"), "a shipped config opens with how to run it"
    assert isinstance(config, RunConfig)
