"""Pairs read apart (``features.pair: separate``) and long texts read whole (``encoder.long_text: windows``),
both ways: the features are each text's own, windows cover every token as stated, a short text reads the
same either way, cached == live, the cosine head starts at the encoder's cosine, bad values name their field."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lmtransfer import evaluate, load_config, predict, train
from lmtransfer.core.errors import ConfigError
from lmtransfer.data.examples import TextPair
from lmtransfer.features.cache.reader import FeatureCache
from lmtransfer.features.extraction import extract
from lmtransfer.features.inputs import encode
from lmtransfer.features.pooling import EncoderFeatures, FeatureSpec
from lmtransfer.nn.readers import TextReader, pair_features
from lmtransfer.runs.kinds import load_run
from lmtransfer.tasks.table import task_for
from tests.conftest import SENTENCES, write_csv
from tests.task_data import task_overrides

pytestmark = pytest.mark.usefixtures("one_thread")
LABELS = ["pos", "neg", "pos", "neg", "biz", "biz", "pos", "biz", "neg", "pos", "neg", "biz"]
LONG = [" ".join([s] * (1 + i % 4)) for i, s in enumerate(SENTENCES)]  # up to 4 x a sentence: several windows


def long_texts(folder) -> list[str]:
    rows = list(zip(LONG, LABELS))
    files = {"train": rows * 4, "dev": rows[:6], "test": rows[6:]}
    return [f"data.{name}={write_csv(folder / f'{name}.csv', part)}" for name, part in files.items()]


def base(tiny_bert_dir, tmp_path, *extra) -> list[str]:
    settings = [f"encoder.model={tiny_bert_dir}", "encoder.max_length=12", "encoder.stride=4", "train.epochs=2"]
    return [
        *settings,
        "train.batch_size=8",
        f"cache_dir={tmp_path / 'cache'}",
        f"output_dir={tmp_path / 'run'}",
        *extra,
    ]


def pair_run(tiny_bert_dir, tmp_path, *extra):
    tmp_path.mkdir(parents=True, exist_ok=True)
    overrides = [*task_overrides("classification", tmp_path), f"encoder.model={tiny_bert_dir}", "train.epochs=2"]
    overrides += ["encoder.max_length=32", "train.batch_size=8", f"cache_dir={tmp_path / 'cache'}"]
    return train(load_config(None, [*overrides, f"output_dir={tmp_path / 'run'}", *extra]), progress=False)


def test_separate_features_are_each_texts_own_sentence_features(tiny_bert_dir, tiny_encoder, tmp_path):
    result = pair_run(tiny_bert_dir, tmp_path)
    assert result.config.features.pair == "separate"  # the default for a frozen encoder
    split = task_for(result.config).read(result.config.data.train)
    texts = list(dict.fromkeys(t for pair in split.items for t in pair))  # each distinct text once
    stored = FeatureCache(result.costs.caches["train"])
    assert len(stored) == len(texts) < 2 * len(split)
    own = extract(tiny_encoder, texts, FeatureSpec((0, 1, 2), max_length=32), tmp_path / "own", progress=False)
    assert own.cache.directory.name == stored.directory.name  # the same key (digest): the same cache
    for i in range(len(texts)):
        np.testing.assert_array_equal(stored.example(i), own.cache.example(i))


def test_both_ways_read_pairs_apart_and_cached_equals_live(tiny_bert_dir, tmp_path):
    for strategy in ("feature", "finetune"):
        result = pair_run(tiny_bert_dir, tmp_path / strategy, f"strategy={strategy}", "features.pair=separate")
        run = load_run(result.directory)
        split = run.task.read(result.config.data.dev)
        prepared = run.prepare(split)
        assert prepared.sides.shape == (len(split), 2) and len(prepared.examples) <= 2 * len(split)
        cached = run.outputs(prepared, from_cache=True)  # a fine-tuned run has no cache: live both times
        np.testing.assert_allclose(cached, run.outputs(prepared), atol=1e-4)
        assert evaluate(result.directory, progress=False)["accuracy"] == pytest.approx(result.test["accuracy"])
        assert len(predict(result.directory, [("the movie was great", "i loved it")])) == 1


def test_pair_features_and_the_cosine_head_on_a_swapped_pair(tiny_bert_dir, tmp_path):
    """Similarity and paraphrase are symmetric, entailment is not: [u; v; |u-v|; u*v] keeps the order in its
    first half and not in |u-v| and u*v; the cosine head (STS-B) is symmetric outright."""
    u, v = torch.randn(3, 5), torch.randn(3, 5)
    a, b = pair_features(u, v), pair_features(v, u)
    assert torch.equal(a[:, 10:], b[:, 10:]) and torch.equal(a[:, :5], b[:, 5:10])
    overrides = [*task_overrides("regression", tmp_path), f"encoder.model={tiny_bert_dir}", "encoder.max_length=32"]
    overrides += ["head.type=cosine", "features.layers=last", "train.epochs=1", f"cache_dir={tmp_path / 'c'}"]
    result = train(load_config(None, [*overrides, f"output_dir={tmp_path / 'run'}"]), progress=False)
    pairs = [("the movie was great", "shares fell in the market"), ("i loved it", "the film was awful")]
    swapped = [(b, a) for a, b in pairs]
    forward, backward = predict(result.directory, pairs), predict(result.directory, swapped)
    assert [f["score"] for f in forward] == pytest.approx([b["score"] for b in backward], abs=1e-6)


def test_an_untrained_cosine_head_scores_as_the_encoders_cosine(tiny_encoder):
    config = load_config(None, ["task=regression", "data.glue=stsb", "data.train=x.tsv", "head.type=cosine"])
    model = task_for(config).build_model(1, 32, [])
    pairs = [TextPair("the movie was great", "i loved it"), TextPair("shares fell", "market news")]
    spec = FeatureSpec((2,), max_length=32)
    texts = [t for p in pairs for t in p]
    live = EncoderFeatures(tiny_encoder.freeze().model, spec, True)
    with torch.no_grad():
        vectors = live(**encode(tiny_encoder.tokenizer, texts, 32).pad(range(4), 0))  # (4, 1, H)
        features = vectors.reshape(2, 2, 1, 1, -1)  # (B, S, W, L, H)
        scores = model(features, windows=torch.ones(2, 2, 1, dtype=torch.bool))[:, 0]
    expected = F.cosine_similarity(vectors[0::2, 0], vectors[1::2, 0], dim=-1)
    torch.testing.assert_close(scores, expected)


def test_windows_cover_every_token_as_stated(tiny_encoder):
    tokenizer, text = tiny_encoder.tokenizer, LONG[3]  # 4 x a sentence
    whole = tokenizer(text, add_special_tokens=False)["input_ids"]
    windows = encode(tokenizer, [text, "short"], 12, stride=4)
    assert windows.owner.tolist()[-1] == 1 and windows.truncated == 1  # "short" is one window; the text several
    content = [ids[1:-1] for ids, own in zip(windows.columns["input_ids"], windows.owner) if own == 0]  # no CLS, SEP
    assert all(len(ids) + 2 <= 12 for ids in content) and len(content) > 1
    rebuilt = list(content[0])
    for before, after in itertools.pairwise(content):
        assert after[:4] == before[-4:]  # consecutive windows share exactly stride tokens
        rebuilt += after[4:]
    assert rebuilt == whole  # and together they are the whole text, in order


def test_a_short_text_reads_the_same_in_windows_as_truncated(tiny_encoder, tmp_path):
    texts = ["the movie was great", "shares fell", LONG[3]]
    cut = extract(tiny_encoder, texts, FeatureSpec((0, 2), max_length=12), tmp_path / "a", progress=False).cache
    spec = FeatureSpec((0, 2), max_length=12, window_stride=4)
    windowed = extract(tiny_encoder, texts, spec, tmp_path / "b", progress=False).cache
    for i in (0, 1):
        np.testing.assert_array_equal(windowed.example(i), cut.example(i))
    assert len(windowed.example(2)) > 1 and len(cut.example(2)) == 1
    np.testing.assert_array_equal(windowed.example(2)[0], cut.example(2)[0])  # the first window is the cut text


@pytest.mark.parametrize("strategy", ["feature", "finetune"])
def test_long_texts_in_windows_train_both_ways_and_cached_equals_live(strategy, tiny_bert_dir, tmp_path, capsys):
    overrides = base(tiny_bert_dir, tmp_path, *long_texts(tmp_path), "encoder.long_text=windows")
    overrides += [f"strategy={strategy}", "encoder.max_windows=2", "features.window_pooling=attention"]
    result = train(load_config(None, overrides), progress=True)
    said = capsys.readouterr().err
    if strategy == "feature":
        assert "texts were longer than max_length=12 tokens and were read whole, in windows" in said
    else:
        assert "texts are longer than 2 windows: fine-tuning reads their first 2 (encoder.max_windows)" in said
    run = load_run(result.directory)
    prepared = run.prepare(run.task.read(result.config.data.test))
    np.testing.assert_allclose(run.outputs(prepared, from_cache=True), run.outputs(prepared), atol=1e-4)
    assert evaluate(result.directory, progress=False)["accuracy"] == pytest.approx(result.test["accuracy"])


def test_window_pooling_of_one_window_is_that_window():
    x = torch.randn(2, 1, 3, 4)  # (B, S, W, D)
    mask = torch.tensor([[[True, False, False]], [[True, True, False]]])
    for kind in ("mean", "max", "attention"):
        reader = TextReader(4, kind, "single")
        out = reader(x, mask)  # (B, D)
        torch.testing.assert_close(out[0], x[0, 0, 0])  # one window: itself, whatever the pooling
    torch.testing.assert_close(TextReader(4, "mean")(x, mask)[1], x[1, 0, :2].mean(dim=0))
    torch.testing.assert_close(TextReader(4, "max")(x, mask)[1], x[1, 0, :2].amax(dim=0))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (["features.pair=separate"], "features.pair"),
        (
            ["data.glue=mrpc", "data.train=x.tsv", "features.pair=joint", "encoder.long_text=windows"],
            "encoder.long_text",
        ),
        (["task=tagging", "encoder.long_text=windows"], "encoder.long_text"),
        (["encoder.long_text=windows", "encoder.stride=200"], "encoder.stride"),
        (["encoder.long_text=windows", "head.type=bilstm"], "head.type"),
        (["task=regression", "head.type=cosine"], "head.type"),
        (["head.type=cosine"], "head.type"),
        (["encoder.long_text=sometimes"], "encoder.long_text"),
        (["features.window_pooling=median"], "features.window_pooling"),
    ],
)
def test_bad_pair_and_window_settings_name_their_field(overrides, field):
    with pytest.raises(ConfigError, match=rf"field '{re.escape(field)}"):
        load_config(None, overrides)


def test_every_head_of_a_scored_pair_read_apart_starts_from_the_cosine():
    """Regression on a pair read apart: the cosine head, or a head on [u; v; |u-v|; u*v] added to it whose
    output starts at zero; the cosine is mapped onto the training targets' range (labels.json)."""
    from lmtransfer.tasks.table import TASKS

    x = torch.randn(4, 2, 8)  # (B, 2, D)
    cosine = F.cosine_similarity(x[:, 0], x[:, 1], dim=-1)  # (B,)
    for head in ("cosine", "linear", "mlp"):
        config = load_config(None, ["task=regression", "data.glue=stsb", "data.train=x", f"head.type={head}"])
        model = TASKS["regression"](config).head(8, ["0.0", "5.0"])
        torch.testing.assert_close(model(x)[:, 0], 5.0 * cosine)


def test_a_scored_pair_read_apart_starts_its_mix_at_the_last_layer():
    """The encoder's own similarity is that of its last layer: under a head that compares the two vectors
    the mix starts with 90 % of its weight there; a classifier on [u; v; |u-v|; u*v] starts at the average."""
    scored = ["task=regression", "data.glue=stsb", "data.train=x", "features.layers=all"]
    mix = task_for(load_config(None, scored)).build_model(4, 8, ["0.0", "5.0"]).mix
    assert mix.layer_weights()["softmax"] == pytest.approx([0.1 / 3] * 3 + [0.9])
    classified = ["data.glue=mrpc", "data.train=x", "features.layers=all", "strategy=feature"]
    mix = task_for(load_config(None, classified)).build_model(4, 8, ["0", "1"]).mix
    assert mix.layer_weights()["softmax"] == pytest.approx([0.25] * 4)


def test_a_regression_run_records_its_targets_range(tiny_bert_dir, tmp_path):
    import json

    result = pair_run(tiny_bert_dir, tmp_path)  # classification: the labels
    assert json.loads((result.directory / "labels.json").read_text()) == ["0", "1"]
    (tmp_path / "r").mkdir(exist_ok=True)
    overrides = [*task_overrides("regression", tmp_path / "r"), f"encoder.model={tiny_bert_dir}", "train.epochs=1"]
    places = [f"cache_dir={tmp_path / 'c'}", f"output_dir={tmp_path / 'reg'}"]
    run = train(load_config(None, [*overrides, *places]), progress=False)
    low, high = map(float, json.loads((run.directory / "labels.json").read_text()))
    split = task_for(run.config).read(run.config.data.train)
    assert (low, high) == (min(map(float, split.labels)), max(map(float, split.labels)))
