"""Feature backends are a registry (issue 28): every registered backend keeps the protocol, and a backend
from outside the package is one module and one registration, which a feature-based run then extracts and
predicts through."""

from __future__ import annotations

import dataclasses
import importlib
import sys

import numpy as np
import pytest
import torch

from lmtransfer import load_config
from lmtransfer.api import predict, train
from lmtransfer.core.backends import DECLARED, export_formats
from lmtransfer.core.errors import ConfigError
from lmtransfer.features.backends import BACKENDS, ExportingBackend, FeatureBackend, exporter, unregister
from lmtransfer.features.cache.key import CacheKey
from lmtransfer.features.cache.reader import FeatureCache
from lmtransfer.features.inputs import encode
from lmtransfer.features.pooling import encoder_inputs, hidden_states
from tests.conftest import SENTENCES

# The whole of a new backend: this module, imported (``toy_backend``), registers itself.
TOY = '''"""A toy feature backend: torch's hidden states, counted."""

from lmtransfer.core.backends import BackendInfo
from lmtransfer.features.backends import register
from lmtransfer.features.torch_backend import TorchBackend


class CountingBackend(TorchBackend):
    info = BackendInfo("counting")
    batches = 0

    def cache_name(self, quantize):
        return "counting"

    def hidden_states(self, encoder, compute, cache_root, quantize, progress):
        states = super().hidden_states(encoder, compute, cache_root, quantize, progress)

        def counted(inputs):
            self.batches += 1
            return states(inputs)

        return counted


BACKEND = register(CountingBackend())
'''


@pytest.fixture
def toy_backend(tmp_path, monkeypatch):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "toy_backend.py").write_text(TOY, encoding="utf-8")
    monkeypatch.syspath_prepend(str(plugins))
    yield importlib.import_module("toy_backend").BACKEND
    unregister("counting")
    sys.modules.pop("toy_backend")


def test_a_registered_backend_extracts_and_predicts_a_feature_run(toy_backend, run_overrides, tmp_path):
    with pytest.raises(ConfigError, match=r"features\.backend"):
        load_config(overrides=[*run_overrides, "features.backend=nosuch"])
    result = train(load_config(overrides=[*run_overrides, "features.backend=counting"]), progress=False)
    assert all(FeatureCache(d).key["backend"] == "counting" for d in result.costs.caches.values())
    extracted = toy_backend.batches
    assert extracted > 0  # the caches came from the toy's hidden states
    got = predict(result.directory, SENTENCES[:6])
    assert toy_backend.batches > extracted  # and so did live prediction
    plain = [*run_overrides, f"output_dir={tmp_path / 'torch-run'}"]
    want = predict(train(load_config(overrides=plain), progress=False).directory, SENTENCES[:6])
    assert [r["label"] for r in got] == [r["label"] for r in want]  # the toy computes what torch computes
    probabilities = [[list(r["probabilities"].values()) for r in rows] for rows in (got, want)]
    np.testing.assert_allclose(*probabilities, atol=1e-5)


def test_a_backend_is_gone_once_unregistered(toy_backend, run_overrides):
    unregister("counting")
    assert "counting" not in BACKENDS and "counting" not in DECLARED
    with pytest.raises(ConfigError, match=r"features\.backend"):
        load_config(overrides=[*run_overrides, "features.backend=counting"])


def test_every_backend_is_declared_for_configs_and_exports_what_it_declares():
    assert list(BACKENDS) == list(DECLARED)
    for name, backend in BACKENDS.items():
        assert isinstance(backend, FeatureBackend) and backend.info is DECLARED[name]
        for fmt in backend.info.export_formats:
            assert isinstance(backend, ExportingBackend) and exporter(fmt) is backend
    assert export_formats() == ("onnx",)


@pytest.mark.parametrize("name", list(BACKENDS))
def test_every_backend_computes_the_encoders_hidden_states(name, tiny_encoder, tmp_path):
    if name == "onnx":
        pytest.importorskip("onnxruntime")
    backend = BACKENDS[name]
    _, compute = backend.placed(torch.device("cpu"), "float32")
    assert compute in backend.info.computes
    batch = encode(tiny_encoder.tokenizer, SENTENCES[:4], 32).pad(range(4), tiny_encoder.tokenizer.pad_token_id)
    inputs = encoder_inputs(batch, tiny_encoder.uses_token_type_ids)
    runner = backend.hidden_states(tiny_encoder.freeze(), compute, tmp_path, "none", False)
    with torch.inference_mode():
        got, want = runner(inputs), hidden_states(tiny_encoder.model, inputs)
    assert len(got) == len(want) == tiny_encoder.num_layers + 1
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=1e-4, rtol=1e-4)


def test_cache_keys_record_the_backends_as_before_backends_were_a_registry():
    """What each backend puts in a cache key, and so the digests of the caches made before issue 28."""
    key = CacheKey("m", "w", "t", 32, (0, 1), "sentence", "mean", "float16", "d")
    torch_backend, onnx = BACKENDS["torch"], BACKENDS["onnx"]
    names = [torch_backend.cache_name("none"), onnx.cache_name("none"), onnx.cache_name("int8")]
    assert names == [None, "onnx", "onnx-int8"]
    digests = [dataclasses.replace(key, backend=name).digest() for name in names]
    assert digests == ["a8d8f68ef3a53293b7832baa", "3ee80fdda1ad98aa431ee114", "a5860e4eb674c2d47f6d2cd2"]
