"""Issue 19: the ONNX Runtime backend for frozen extraction and prediction (features.backend, quantize)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lmtransfer import load_config
from lmtransfer.api import predict, train
from lmtransfer.core.errors import ConfigError, LmtError
from lmtransfer.encoders.onnx import OnnxHiddenStates, graph_path
from lmtransfer.features.backends import backend_for
from lmtransfer.features.cache.reader import FeatureCache
from lmtransfer.features.extraction import extract
from lmtransfer.features.pooling import FeatureSpec
from lmtransfer.runs.export import export_run
from lmtransfer.runs.kinds import load_run
from tests.conftest import SENTENCES
from tests.task_data import train_task_runs

pytest.importorskip("onnxruntime")

TEXTS = [f"{s} {'again ' * (i % 4)}" for i, s in enumerate(SENTENCES * 2)]
SENTENCE = FeatureSpec((0, 1, 2), max_length=32)
WORDS = FeatureSpec((0, 2), granularity="word", pooling="first", max_length=32)


def _all(cache: FeatureCache) -> list[np.ndarray]:
    return [cache.example(i).astype(np.float32) for i in range(len(cache))]


@pytest.mark.parametrize("spec", [SENTENCE, WORDS], ids=["sentence-mean", "word-first"])
def test_onnx_float32_features_equal_torch(tiny_encoder, tmp_path, spec):
    examples = [t.split() for t in TEXTS] if spec.granularity == "word" else TEXTS
    torch_cache = extract(tiny_encoder, examples, spec, tmp_path, dtype="float32", compute="float32", progress=False)
    onnx_cache = extract(tiny_encoder, examples, spec, tmp_path, dtype="float32", backend="onnx", progress=False)
    assert onnx_cache.cache.directory != torch_cache.cache.directory  # keyed apart
    assert onnx_cache.cache.key["backend"] == "onnx" and torch_cache.cache.key.get("backend") is None
    for want, got in zip(_all(torch_cache.cache), _all(onnx_cache.cache)):
        np.testing.assert_allclose(got, want, atol=1e-4)


def test_int8_features_are_close_and_the_graphs_are_made_once(tiny_encoder, tmp_path):
    plain = extract(tiny_encoder, TEXTS, SENTENCE, tmp_path, dtype="float32", compute="float32", progress=False)
    int8 = extract(tiny_encoder, TEXTS, SENTENCE, tmp_path, dtype="float32", backend="onnx", quantize="int8")
    assert int8.cache.key["backend"] == "onnx-int8"
    want = np.stack(_all(plain.cache))[:, 0, 1:]  # (N, L, H): the transformer blocks (the embeddings are not quantised)
    got = np.stack(_all(int8.cache))[:, 0, 1:]
    cosine = (want * got).sum(-1) / (np.linalg.norm(want, axis=-1) * np.linalg.norm(got, axis=-1))
    assert cosine.mean() > 0.99 and cosine.min() > 0.95  # the stated tolerance of int8 weights
    assert not np.array_equal(want, got)  # it is int8 arithmetic, not the float32 graph again
    graphs = [graph_path(tmp_path, tiny_encoder), graph_path(tmp_path, tiny_encoder, "int8")]
    stamps = [g.stat().st_mtime_ns for g in graphs]
    again = extract(tiny_encoder, TEXTS[:5], SENTENCE, tmp_path, backend="onnx", quantize="int8", progress=False)
    assert again.examples == 5 and [g.stat().st_mtime_ns for g in graphs] == stamps  # exported once per weights


def test_an_onnx_feature_run_predicts_as_it_was_evaluated(run_overrides):
    result = train(load_config(overrides=[*run_overrides, "features.backend=onnx"]), progress=False)
    assert result.costs.extraction.compute == "float32"
    assert all("onnx" in FeatureCache(d).key["backend"] for d in result.costs.caches.values())
    rows = predict(result.directory, SENTENCES[:6])
    run = load_run(result.directory)
    assert isinstance(run.hidden_states(), OnnxHiddenStates)  # live prediction runs the graph extraction ran
    assert [r["label"] for r in rows] == [r["label"] for r in predict(result.directory, SENTENCES[:6])]


def test_backend_rules_name_their_field(run_overrides):
    with pytest.raises(ConfigError, match=r"features\.quantize"):
        load_config(overrides=[*run_overrides, "features.quantize=int8"])
    with pytest.raises(ConfigError, match=r"features\.compute"):
        load_config(overrides=[*run_overrides, "features.backend=onnx", "features.compute=bfloat16"])


def test_auto_backend_is_onnx_only_for_float32_on_a_cpu():
    cpu = torch.device("cpu")
    named = lambda *args: backend_for(*args).info.name  # noqa: E731
    assert named("auto", cpu, "float32") == "onnx"
    assert named("auto", cpu, "bfloat16") == "torch"
    assert named("auto", torch.device("cuda"), "float32") == "torch"
    assert named("torch", cpu, "float32") == "torch" and named("onnx", cpu, "bfloat16") == "onnx"


@pytest.fixture(scope="module")
def task_runs(tmp_path_factory, tiny_bert_dir) -> dict[str, Path]:
    """A tiny run of every task: fine-tuned for classification (pairs), feature-based for the others."""
    from tests.test_serve import INPUTS

    return train_task_runs(tmp_path_factory, tiny_bert_dir, INPUTS, "export")


def _scores(rows: list) -> np.ndarray:
    """The numbers of predict's rows, flattened (probabilities, values, tag scores, answer scores)."""
    found = []

    def walk(value):
        if isinstance(value, dict):
            for key in sorted(value):
                walk(value[key])
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)
        elif isinstance(value, float):
            found.append(value)

    walk(rows)
    return np.array(found)


def _predictions(task: str, folder: Path) -> list:
    from tests.test_serve import INPUTS, as_predict_input

    items = [as_predict_input(task, item) for item in INPUTS[task]]
    run = load_run(folder)
    return [run.task.prediction_row(item, found) for item, found in zip(items, predict(folder, items))]


@pytest.mark.parametrize("task", ["classification", "regression", "multilabel", "tagging", "qa"])
def test_an_export_predicts_what_its_run_predicts(task, task_runs, tmp_path):
    run = task_runs[task]
    folder = export_run(run, tmp_path / "export", progress=False)
    assert not (folder / "encoder").exists() and not list(folder.rglob("*.safetensors"))[1:]  # the head alone
    exported = load_run(folder)
    assert exported.exported and isinstance(exported.hidden_states(), OnnxHiddenStates)
    want, got = _predictions(task, run), _predictions(task, folder)
    np.testing.assert_allclose(_scores(got), _scores(want), atol=1e-4)
    assert json.dumps(_strip_floats(got)) == json.dumps(_strip_floats(want))  # labels, tags, answers equal


def test_an_int8_export_predicts_close_to_its_run_and_serves(task_runs, tmp_path):
    from fastapi.testclient import TestClient

    from lmtransfer.serve.app import build_app
    from lmtransfer.serve.served import ServedRun
    from tests.test_serve import INPUTS

    run = task_runs["classification"]
    folder = export_run(run, tmp_path / "int8", quantize="int8", progress=False)
    info = json.loads((folder / "export.json").read_text())
    assert info["quantize"] == "int8" and info["format"] == "onnx"
    want, got = _predictions("classification", run), _predictions("classification", folder)
    assert np.abs(_scores(got) - _scores(want)).max() < 0.05  # the stated tolerance of int8 weights
    with TestClient(build_app([ServedRun.load("pairs", folder)], [])) as client:
        response = client.post("/v1/predict/pairs", json={"inputs": INPUTS["classification"]})
        assert response.status_code == 200, response.text
        assert response.json()["outputs"] == json.loads(json.dumps(got))
        assert client.get("/v1/models").status_code == 200


def test_exporting_what_cannot_be_exported_says_why(task_runs, tmp_path):
    folder = export_run(task_runs["regression"], tmp_path / "once", progress=False)
    with pytest.raises(LmtError, match="export already"):
        export_run(folder, tmp_path / "twice", progress=False)


def _strip_floats(value):
    if isinstance(value, dict):
        return {k: _strip_floats(v) for k, v in value.items() if not isinstance(v, float)}
    if isinstance(value, list | tuple):
        return [_strip_floats(v) for v in value if not isinstance(v, float)]
    return value
