"""End to end on the tiny BERT: train, reload, evaluate, predict; frozen encoder; cached == live."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lmtransfer import load_config, predict, train
from lmtransfer.api import evaluate
from lmtransfer.core.errors import ConfigError, DataError
from lmtransfer.features.extraction import extract
from lmtransfer.features.pooling import EncoderFeatures, FeatureSpec
from lmtransfer.nn.task_model import sentence_classifier
from lmtransfer.runs.encoder_run import Run
from lmtransfer.tasks.metrics import classification_metrics
from lmtransfer.training.datasets import CachedFeatureDataset, TextDataset
from lmtransfer.training.loop import LoopArgs, fit
from lmtransfer.training.predict import predict_outputs
from lmtransfer.training.strategies import LiveModel
from tests.conftest import SENTENCES, write_csv

SPEC = FeatureSpec(layers=(0, 1, 2), pooling="mean", max_length=32)


@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_head_on_cached_features_equals_head_on_live_features(tiny_encoder, tmp_path, head):
    cache = extract(tiny_encoder, SENTENCES, SPEC, tmp_path, dtype="float32", progress=False).cache
    torch.manual_seed(0)
    classifier = sentence_classifier(3, 32, 4, head=head).eval()
    with torch.no_grad():
        classifier.mix.weights.copy_(torch.tensor([0.3, -1.0, 2.0]))
    cached, _ = predict_outputs(classifier, CachedFeatureDataset(cache), batch_size=5)
    live = LiveModel(EncoderFeatures(tiny_encoder.model, SPEC, True), classifier)
    live_out, _ = predict_outputs(live, TextDataset(tiny_encoder.tokenizer, SENTENCES, 32), batch_size=5)
    np.testing.assert_allclose(cached, live_out, atol=1e-5)
    for storage in ("float16", "int8"):  # live features rounded as the cache stores them give the same outputs
        stored = extract(tiny_encoder, SENTENCES, SPEC, tmp_path, dtype=storage, progress=False).cache
        rounded = LiveModel(EncoderFeatures(tiny_encoder.model, SPEC, True), classifier, storage)
        live_out, _ = predict_outputs(rounded, TextDataset(tiny_encoder.tokenizer, SENTENCES, 32), batch_size=5)
        np.testing.assert_allclose(predict_outputs(classifier, CachedFeatureDataset(stored), 5)[0], live_out, atol=1e-3)


def test_no_gradient_reaches_the_frozen_encoder(tiny_encoder, tmp_path):
    before = {k: v.clone() for k, v in tiny_encoder.model.state_dict().items()}
    cache = extract(tiny_encoder, SENTENCES, SPEC, tmp_path, progress=False).cache
    assert not tiny_encoder.model.training
    assert all(not p.requires_grad for p in tiny_encoder.model.parameters())
    labels = np.arange(len(SENTENCES)) % 3
    model = sentence_classifier(3, 32, 3)
    source = CachedFeatureDataset(cache, labels)

    def evaluate_dev(outputs, y):
        return classification_metrics(y, outputs.argmax(1), ["a", "b", "c"])

    fit(
        model,
        source,
        source,
        loss_fn=F.cross_entropy,
        evaluate=evaluate_dev,
        args=LoopArgs(epochs=2, batch_size=4, progress=False),
    )
    # live path with a frozen encoder: the head gets gradients, the encoder none
    live = LiveModel(EncoderFeatures(tiny_encoder.model, SPEC, True), model)
    batch = tiny_encoder.tokenizer(SENTENCES[:4], return_tensors="pt", padding=True)
    F.cross_entropy(live(**batch), torch.tensor([0, 1, 2, 0])).backward()
    assert all(p.grad is None for p in tiny_encoder.model.parameters())
    assert model.mix.weights.grad is not None
    after = tiny_encoder.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_train_writes_a_reloadable_run(run_overrides, tmp_path):
    config = load_config(None, [*run_overrides, "head.type=mlp"])
    result = train(config, progress=False)
    run_dir = result.directory
    names = sorted(p.name for p in run_dir.iterdir())
    assert names == [
        "README.md",  # the model card
        "checkpoints",
        "config.yaml",
        "encoder.json",
        "labels.json",
        "layer_weights.json",
        "metrics.json",
        "model.safetensors",
        "predictions",
    ]
    written = (run_dir / "predictions" / "test.jsonl").read_text().splitlines()
    assert len(written) == result.metrics["test"]["examples"]
    assert set(json.loads(written[0])) == {"text", "label", "probabilities", "gold"}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["dev"]) >= {"accuracy", "macro_f1", "per_class"}
    assert set(metrics["dev"]["per_class"]) == {"biz", "neg", "pos"}
    assert metrics["costs"]["trainable_parameters"] == sum(p.numel() for p in Run.load(run_dir).model.parameters())
    weights = json.loads((run_dir / "layer_weights.json").read_text())
    assert weights["layers"] == [0, 1, 2] and abs(sum(weights["softmax"]) - 1) < 1e-5
    # evaluate reproduces the test metrics written at training time
    again = evaluate(run_dir, progress=False)
    assert again["accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    predictions = predict(run_dir, ["the movie was great", "shares fell"])
    assert [set(p["probabilities"]) for p in predictions] == [{"biz", "neg", "pos"}] * 2
    assert all(abs(sum(p["probabilities"].values()) - 1) < 1e-5 for p in predictions)


def test_training_is_deterministic(run_overrides):
    first = train(load_config(None, run_overrides), progress=False).metrics
    second = train(load_config(None, run_overrides), progress=False).metrics
    assert first["history"] == second["history"] and first["test"] == second["test"]


def test_bad_input_writes_nothing(run_overrides, sentiment_files, tmp_path):
    write_csv(sentiment_files["dev"], [("fine", "pos"), ("meh", "neutral")])
    with pytest.raises(DataError, match="label 'neutral' never appears"):
        train(load_config(None, run_overrides), progress=False)
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


def test_unknown_layer_index_names_config_line(run_overrides, tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("features:\n  pooling: mean\n  layers: [0, 7]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        train(load_config(path, run_overrides), progress=False)
    assert str(info.value) == (
        f"{path}: line 3: field 'features.layers': layer 7 does not exist: this encoder has "
        "layers 0..2 (0 = embeddings) or -1..-3 from the top"
    )
    assert not (tmp_path / "run").exists()


def test_a_new_run_replaces_the_old_one_whole(run_overrides, tmp_path):
    train(load_config(None, run_overrides), progress=False)
    (tmp_path / "run" / "stale.txt").write_text("from before")
    train(load_config(None, [*run_overrides, "head.type=mlp"]), progress=False)
    assert not (tmp_path / "run" / "stale.txt").exists()
    assert Run.load(tmp_path / "run").config.head.type == "mlp"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".run")]
