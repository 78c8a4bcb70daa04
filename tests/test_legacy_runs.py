"""Runs and feature caches written by commit 088346a (tests/data/main-088346a, made by its make.py) load,
evaluate to the metrics they recorded, predict what they predicted then, and find their own caches; a run
trained now writes the same files with the same fields."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import yaml

from lmtransfer import CacheKey, FeatureCache, evaluate, load_config, predict, train
from lmtransfer.config.prompt_schema import PromptConfig
from lmtransfer.config.resolve import DEFAULT_MIN_STEPS
from lmtransfer.features.cache.key import ADDED

pytestmark = pytest.mark.usefixtures("one_thread")
SAVED = Path(__file__).resolve().parent / "data" / "main-088346a"
RUNS = ("feature", "finetune", "concat-int8", "tagging", "tfidf")


@pytest.fixture
def legacy(tmp_path, monkeypatch) -> Path:
    """A copy of the saved folder, as the working directory (the runs' configs use paths relative to it)."""
    folder = tmp_path / "legacy"
    shutil.copytree(SAVED, folder)
    monkeypatch.chdir(folder)
    return folder


def numbers(metrics: dict) -> dict:
    """The numbers of a metrics dict, nested dicts flattened to dotted keys."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out |= {f"{key}.{k}": v for k, v in numbers(value).items()}
        elif isinstance(value, int | float):
            out[key] = value
    return out


@pytest.mark.parametrize("name", RUNS)
def test_a_saved_run_evaluates_to_its_recorded_test_metrics(legacy, name):
    recorded = json.loads((legacy / "saved" / name / "metrics.json").read_text())["test"]
    caches = sorted((legacy / "cache" / "features").iterdir())
    again = evaluate(Path("saved", name), progress=False)
    assert numbers(again) == pytest.approx(numbers(recorded), abs=1e-6)
    assert sorted((legacy / "cache" / "features").iterdir()) == caches  # the saved caches served, none was added


def test_saved_caches_keep_their_keys_and_read_back(legacy):
    for directory in sorted((legacy / "cache" / "features").iterdir()):
        stored = json.loads((directory / "key.json").read_text())
        key = CacheKey(**{**stored, "layers": tuple(stored["layers"])})
        assert key.digest() == directory.name
        unused = {k: None for k in ADDED}  # the key's fields added since 088346a, unused by its caches
        assert dataclasses.asdict(key) == {**stored, **unused, "layers": tuple(stored["layers"])}
        cache = FeatureCache(directory)
        assert len(cache) > 0 and cache.example(0).shape[1:] == (len(stored["layers"]), 16)


def test_saved_runs_predict_what_they_predicted(legacy):
    saved = json.loads((legacy / "predictions.json").read_text())
    for name in RUNS:
        inputs = saved["words"] if name == "tagging" else saved["texts"]
        found, then = predict(Path("saved", name), inputs), saved["found"][name]
        if name == "tagging":  # tags per word
            assert found == then
            continue
        assert [f["label"] for f in found] == [t["label"] for t in then]
        for now, before in zip(found, then):
            assert now["probabilities"] == pytest.approx(before["probabilities"], abs=1e-5)


def structure(value):
    """The shape of a JSON value: dict keys (recursively), lists of dicts, types of leaves (null counts as a
    number: a rate is null where nothing was counted)."""
    if isinstance(value, dict):
        return {k: structure(v) for k, v in value.items() if k not in ("per_class", "per_type", "caches")}
    if isinstance(value, list):
        return [structure(v) for v in value] if value and isinstance(value[0], dict) else "list"
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return "number"
    return type(value).__name__


@pytest.mark.parametrize("name", RUNS)
def test_a_run_trained_now_writes_what_a_run_held_then(legacy, name):
    """Same config, same files, same fields in every JSON file and in config.yaml (what was added since
    088346a, and only that, besides)."""
    old = legacy / "saved" / name
    config = yaml.safe_load((old / "config.yaml").read_text())
    new = legacy / "again" / name
    overrides = [f"{section}={json.dumps(value)}" for section, value in config.items() if section != "output_dir"]
    train(load_config(None, [*overrides, f"output_dir={new}"]), progress=False)
    shutil.rmtree(new / "checkpoints", ignore_errors=True)
    files = lambda root: sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())  # noqa: E731
    units = [f"predictions/{p.name.split('.')[0]}.units.npz" for p in (old / "predictions").iterdir()]
    # new since 088346a: the model card, and each split's evaluation units (compare's intervals)
    assert files(new) == sorted([*files(old), "README.md", *units])
    for path in ("metrics.json", "encoder.json", "labels.json", "layer_weights.json"):
        if (old / path).is_file():
            now, then = json.loads((new / path).read_text()), json.loads((old / path).read_text())
            if path == "metrics.json":  # new since: the hardware, and what compute: auto resolved to
                assert now.pop("hardware")["cpu"]
                now["costs"].pop("extract_compute", None)
            if "history" in now:  # new since: dev before training (step 0), each evaluation's step, convergence
                assert now.pop("convergence")["rule"] and now["history"][0]["step"] == 0
                now["history"] = [{k: v for k, v in e.items() if k != "step"} for e in now["history"][1:2]]
                then["history"] = then["history"][:1]
            assert structure(now) == structure(then)
    written = yaml.safe_load((new / "config.yaml").read_text())
    added = {  # the fields added since 088346a, at their defaults
        "train": {
            "report_to": [],
            "logging_steps": 10,
            "experiment": None,
            "tags": {},
            "score_test": True,
            "gradient_checkpointing": False,
            "min_steps": DEFAULT_MIN_STEPS[config["strategy"]],
            "eval_steps": None,
        },
        "encoder": {"long_text": "truncate", "stride": 32, "max_windows": 8},
        "features": {"pair": "joint", "window_pooling": "mean", "backend": "torch", "quantize": "none"},
        "finetune": {"attention_dropout": None},
    }
    assert written.pop("prompt") == PromptConfig().model_dump(mode="json")  # a section added since, at its defaults
    assert {k: v if k not in added else {**v, **added[k]} for k, v in config.items()} | {"output_dir": None} == {
        **written,
        "output_dir": None,
    }
