"""Issue 7's speed work: numpy batch padding, extraction devices and batch sizes, pipelined copies,
thread settings and the busy-CPU warning. (The speed itself is measured in benchmarks/performance.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from lmtransfer import load_config
from lmtransfer.cli.main import cli
from lmtransfer.core import threads
from lmtransfer.core.devices import pick_device
from lmtransfer.core.errors import ConfigError
from lmtransfer.data.examples import Encoded, TextPair
from lmtransfer.features.extraction import default_batch_size, extract
from lmtransfer.features.inputs import encode
from lmtransfer.features.pooling import FeatureSpec
from tests.conftest import SENTENCES

TEXTS = [f"{s} {'!' * (i % 5)}" for i, s in enumerate(SENTENCES * 3)]  # 36 texts of varied length
WORDS = [s.split() for s in SENTENCES]
PAIRS = [TextPair(a, b) for a, b in zip(SENTENCES, reversed(SENTENCES))]
IDS = [Encoded(tuple(range(5, 5 + n)), tuple([0] * n)) for n in (3, 7, 1, 4)]


@pytest.mark.parametrize("examples", [TEXTS, WORDS, PAIRS, IDS], ids=["texts", "words", "pairs", "ids"])
@pytest.mark.parametrize("which", ["tiny_bert_dir", "tiny_mpnet_dir"])
def test_numpy_padding_equals_tokenizer_pad(examples, which, request):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(request.getfixturevalue(which))
    encoding = encode(tokenizer, examples, max_length=12)
    rng = np.random.default_rng(0)
    for size in (1, 3, len(examples)):
        chosen = rng.permutation(len(examples))[:size]
        want = tokenizer.pad(
            {n: [encoding.columns[n][i] for i in chosen] for n in encoding.columns}, return_tensors="pt"
        )
        got = encoding.pad(chosen, tokenizer.pad_token_id)
        assert set(got) == set(want)
        for name in want:
            assert got[name].dtype == torch.int64
            assert torch.equal(got[name], want[name]), name


def test_padding_an_empty_selection():
    from lmtransfer.features.inputs import Encoding

    got = Encoding({"input_ids": [[1, 2]], "attention_mask": [[1, 1]]}).pad([], pad_token_id=0)
    assert got["input_ids"].shape == (0, 0)


def test_device_and_batch_size_defaults():
    assert pick_device("cpu") == torch.device("cpu")
    if not torch.accelerator.is_available():
        assert pick_device("auto") == torch.device("cpu")
    assert default_batch_size(torch.device("cpu")) == 64
    assert default_batch_size(torch.device("cuda")) == 512
    config = load_config(None, [])
    assert config.features.batch_size is None and config.features.device == "auto"


def test_bad_device_names_its_field():
    with pytest.raises(ConfigError, match=r"features\.device"):
        load_config(None, ["features.device=gpu please"])


@pytest.mark.parametrize(("granularity", "pooling"), [("sentence", "mean"), ("word", "mean"), ("token", "mean")])
def test_cache_does_not_depend_on_batch_size(tiny_encoder, tmp_path, granularity, pooling):
    """Pipelined batches of any size, longest first, land in each example's own rows."""
    spec = FeatureSpec((0, 2), granularity, pooling, max_length=32)
    one = extract(tiny_encoder, TEXTS, spec, tmp_path / "a", dtype="float32", batch_size=1, progress=False).cache
    many = extract(tiny_encoder, TEXTS, spec, tmp_path / "b", dtype="float32", batch_size=7, progress=False).cache
    default = extract(tiny_encoder, TEXTS, spec, tmp_path / "c", dtype="float32", progress=False).cache
    for i in range(len(TEXTS)):
        np.testing.assert_allclose(many.example(i), one.example(i), atol=1e-5)
        np.testing.assert_allclose(default.example(i), one.example(i), atol=1e-5)


def test_extraction_leaves_the_encoder_where_it_was(tiny_encoder, tmp_path):
    spec = FeatureSpec((1,), max_length=32)
    extract(tiny_encoder, TEXTS[:5], spec, tmp_path, device="cpu", progress=False)
    assert next(tiny_encoder.model.parameters()).device.type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize(("granularity", "pooling"), [("sentence", "mean"), ("word", "first"), ("token", "mean")])
def test_gpu_extraction_equals_cpu(tiny_encoder, tmp_path, granularity, pooling):
    spec = FeatureSpec((0, 1, 2), granularity, pooling, max_length=32)
    cpu = extract(tiny_encoder, TEXTS, spec, tmp_path / "cpu", dtype="float32", device="cpu", progress=False).cache
    gpu = extract(tiny_encoder, TEXTS, spec, tmp_path / "gpu", dtype="float32", device="cuda", progress=False)
    assert next(tiny_encoder.model.parameters()).device.type == "cpu"
    for i in range(len(TEXTS)):
        np.testing.assert_allclose(gpu.cache.example(i), cpu.example(i), atol=1e-4)
    half = extract(tiny_encoder, TEXTS, spec, tmp_path / "bf16", compute="bfloat16", device="cuda", progress=False)
    for i in range(len(TEXTS)):
        np.testing.assert_allclose(half.cache.example(i), cpu.example(i), atol=0.1)


def test_threads_option_sets_torch_threads(monkeypatch):
    before = torch.get_num_threads()
    try:
        result = CliRunner().invoke(cli, ["--threads", "1", "cache", "--help"])
        assert result.exit_code == 0, result.output
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("LMTRANSFER_THREADS", "2")
        assert CliRunner().invoke(cli, ["cache", "--help"]).exit_code == 0
        assert torch.get_num_threads() == 2
        assert CliRunner().invoke(cli, ["--threads", "0", "cache", "--help"]).exit_code != 0
    finally:
        torch.set_num_threads(before)


def test_busy_cpu_warning(monkeypatch):
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: False)
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (6.2, 5.0, 4.0))
    message = threads.busy_cpu_warning()
    assert "load average 6.2 on 2 cores" in message and "--threads 1" in message
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (2.4, 2.0, 2.0))  # our own last run, say
    assert threads.busy_cpu_warning() is None
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (6.2, 5.0, 4.0))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert threads.busy_cpu_warning() is None


def test_train_prints_the_busy_warning(run_overrides, monkeypatch, capsys):
    from lmtransfer import train

    monkeypatch.setattr("lmtransfer.training.setup.busy_cpu_warning", lambda: "the CPU is busy (test)")
    train(load_config(None, [*run_overrides, "train.epochs=1"]), progress=True)
    assert "warning: the CPU is busy (test)" in capsys.readouterr().err
