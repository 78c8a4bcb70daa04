"""Baselines: bag-of-words counts / TF-IDF into scikit-learn, vectors trained from scratch, the BiLSTM text head."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from lmtransfer.api import evaluate, extract, predict, train
from lmtransfer.cli.main import cli
from lmtransfer.config.loading import load_config
from lmtransfer.core.errors import ConfigError, ModelError
from lmtransfer.encoders.bow import logistic, tfidf_rows
from lmtransfer.encoders.static import scratch_vocabulary
from lmtransfer.encoders.vector_files import load_static
from lmtransfer.nn.heads import BiLSTMPoolHead
from lmtransfer.runs.bow_run import BagOfWordsRun
from lmtransfer.runs.encoder_run import Run
from tests.conftest import SENTENCES
from tests.task_data import task_overrides

pytestmark = pytest.mark.usefixtures("one_thread")


def _bow_overrides(sentiment_files, tmp_path, kind: str) -> list[str]:
    return [
        f"encoder.model={kind}",
        *(f"data.{name}={path}" for name, path in sentiment_files.items()),
        f"output_dir={tmp_path / kind}",
    ]


# bag of words ------------------------------------------------------------------------------------------


def test_tfidf_rows_equal_scikit_learns_vectorizer():
    from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer

    counts = CountVectorizer().fit_transform(SENTENCES)
    idf = TfidfTransformer().fit(counts).idf_
    expected = TfidfVectorizer().fit_transform(SENTENCES).toarray()
    np.testing.assert_allclose(tfidf_rows(counts.tocsr(), idf).toarray(), expected, rtol=1e-6)


def test_binary_logits_give_logistic_regressions_probabilities():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 5)), rng.integers(0, 2, 40)
    weight, bias = logistic(x, y, seed=0)  # (2, 5), (2,)
    logits = x @ weight.T + bias  # (40, 2)
    probs = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    expected = LogisticRegression(C=1.0, max_iter=2000, random_state=0).fit(x, y).predict_proba(x)
    np.testing.assert_allclose(probs, expected, atol=1e-6)


@pytest.mark.parametrize("kind", ["counts", "tfidf"])
def test_bag_of_words_run_trains_reloads_and_predicts(tmp_path, sentiment_files, kind):
    result = train(load_config(None, _bow_overrides(sentiment_files, tmp_path, kind)), progress=False)
    assert BagOfWordsRun.holds(result.directory)
    assert not (result.directory / "model.safetensors").exists()  # no head, no pickle: json + safetensors
    m = result.metrics
    assert m["dev"]["accuracy"] == 1.0  # dev rows are training rows: a linear model on words fits them
    assert m["costs"]["cache_bytes"] == 0 and m["costs"]["trainable_parameters"] == 3 * (m["vocabulary_size"] + 1)
    assert evaluate(result.directory, progress=False)["accuracy"] == m["test"]["accuracy"]
    found = predict(result.directory, ["i loved it", "shares fell"])
    assert [f["label"] for f in found] == ["pos", "biz"]
    lines = (result.directory / "predictions" / "test.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 6


@pytest.mark.parametrize("task", ["classification", "multilabel", "regression"])
def test_bag_of_words_on_every_whole_text_task(tmp_path, task):
    overrides = [*task_overrides(task, tmp_path), "encoder.model=tfidf", f"output_dir={tmp_path / 'run'}"]
    result = train(load_config(None, overrides), progress=False)
    first_metric = {"classification": "accuracy", "multilabel": "micro_f1", "regression": "pearson"}[task]
    assert first_metric in result.metrics["dev"]  # scored with the task's own metrics
    again = evaluate(result.directory, progress=False)
    assert again[first_metric] == pytest.approx(result.metrics["test"][first_metric])
    run = BagOfWordsRun.load(result.directory)
    assert run.config.task == task


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (["strategy=finetune"], "strategy"),
        (["head.type=mlp"], "head.type"),
        (["task=tagging"], "encoder.model"),
    ],
)
def test_bag_of_words_config_rules(overrides, field):
    with pytest.raises(ConfigError) as err:
        load_config(None, ["encoder.model=tfidf", *overrides])
    assert err.value.field.split("=")[0] == field  # an override is named with its value


def test_bag_of_words_has_nothing_to_extract(tmp_path, sentiment_files):
    with pytest.raises(ConfigError, match="nothing to extract"):
        extract(load_config(None, _bow_overrides(sentiment_files, tmp_path, "counts")), progress=False)


def test_predict_cli_on_a_bag_of_words_run(tmp_path, sentiment_files):
    result = train(load_config(None, _bow_overrides(sentiment_files, tmp_path, "tfidf")), progress=False)
    out = CliRunner().invoke(cli, ["predict", str(result.directory), "the film was awful"])
    assert out.exit_code == 0, out.output
    assert '"label": "neg"' in out.output


# the BiLSTM head ---------------------------------------------------------------------------------------


def test_bilstm_head_ignores_padding_and_pools_empty_texts_to_zero():
    torch.manual_seed(0)
    head = BiLSTMPoolHead(6, 3, lstm_hidden=5, dropout=0.0).eval()
    x = torch.randn(2, 4, 6)  # (B, T, D)
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    padded = torch.cat([x, torch.randn(2, 3, 6)], dim=1)  # (B, T + 3, D): more (garbage) padding
    wider = torch.cat([mask, torch.zeros(2, 3, dtype=torch.bool)], dim=1)
    torch.testing.assert_close(head(x, mask), head(padded, wider))
    empty = head(x, torch.zeros(2, 4, dtype=torch.bool))
    torch.testing.assert_close(empty, head.out.bias.expand(2, 3))


def test_bilstm_text_head_feature_way_cached_equals_live(tmp_path, run_overrides):
    config = load_config(None, [*run_overrides, "head.type=bilstm", "head.lstm_hidden=8", "train.epochs=2"])
    assert config.features.granularity == "token"
    result = train(config, progress=False)
    from_cache = evaluate(result.directory, progress=False)
    assert from_cache["accuracy"] == result.metrics["test"]["accuracy"]
    run = Run.load(result.directory)
    live = predict(result.directory, SENTENCES[6:])
    gold = ["pos", "biz", "neg", "pos", "neg", "biz"]
    assert np.mean([f["label"] == g for f, g in zip(live, gold)]) == pytest.approx(from_cache["accuracy"])
    assert run.config.head.type == "bilstm"


# vectors trained from scratch --------------------------------------------------------------------------


def test_scratch_vocabulary_keeps_case_counts_and_orders_by_frequency():
    words = scratch_vocabulary(["The cat, the cat!", "a Cat"], min_count=1)
    assert words == ["cat", "!", ",", "Cat", "The", "a", "the"]  # by count, then by code point
    assert scratch_vocabulary(["The cat, the cat!", "a Cat"], min_count=2) == ["cat"]


def test_scratch_classifier_trains_its_vectors(tmp_path, sentiment_files):
    overrides = [
        "encoder.model=scratch",
        "encoder.dim=8",
        "head.type=bilstm",
        "head.lstm_hidden=8",
        "train.epochs=2",
        "train.batch_size=8",
        *(f"data.{name}={path}" for name, path in sentiment_files.items()),
        f"output_dir={tmp_path / 'run'}",
    ]
    config = load_config(None, overrides)
    assert config.strategy == "finetune" and config.train.lr == 1e-3
    result = train(config, progress=False)
    run = Run.load(result.directory)
    encoder = run.load_encoder()  # the trained vectors, saved with the run
    tokenizer = encoder.tokenizer
    assert tokenizer.convert_ids_to_tokens(tokenizer("the movie")["input_ids"]) == ["the", "movie"]
    trained = encoder.model.get_input_embeddings().weight
    fresh = torch.from_numpy(np.random.default_rng(13).normal(0.0, 0.1, tuple(trained[2:].shape)).astype(np.float32))
    assert not torch.allclose(trained[2:], fresh)  # they moved from their seeded start
    assert predict(result.directory, ["i loved it"])[0]["label"] in {"pos", "neg", "biz"}


def test_scratch_tagger_trains(tmp_path):
    overrides = [*task_overrides("tagging", tmp_path), "encoder.model=scratch", "encoder.dim=8"]
    result = train(load_config(None, [*overrides, "train.epochs=1", f"output_dir={tmp_path / 'run'}"]), progress=False)
    assert "f1" in result.metrics["dev"]


def test_scratch_rules():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["encoder.model=scratch", "strategy=feature"])
    assert err.value.field == "strategy=feature"
    with pytest.raises(ModelError, match="built from the training data"):
        load_static("scratch")
