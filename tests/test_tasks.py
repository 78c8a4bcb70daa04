"""Every task trains in every way and predicts; word alignment, windows, pairs, and cached == live per word / token."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmtransfer import load_config
from lmtransfer.api import evaluate, predict, predict_file, train
from lmtransfer.core.errors import DataError
from lmtransfer.data.conll import read_conll
from lmtransfer.data.examples import TextPair
from lmtransfer.features.extraction import extract
from lmtransfer.features.inputs import encode
from lmtransfer.features.pooling import EncoderFeatures, FeatureSpec
from lmtransfer.nn.heads import build_head
from lmtransfer.nn.scalar_mix import ScalarMix
from lmtransfer.nn.task_model import TaskModel
from lmtransfer.tasks.table import task_for
from lmtransfer.tasks.tagging import owned, word_windows
from lmtransfer.tasks.units import Units
from lmtransfer.training.datasets import CachedFeatureDataset, TextDataset
from lmtransfer.training.predict import predict_outputs
from lmtransfer.training.strategies import LiveModel
from tests.task_data import task_overrides, write_conll, write_squad

TASKS = ("classification", "multilabel", "regression", "tagging", "qa")
RAW_INPUTS = {
    "classification": [("the movie was great", "the movie was great"), ("shares fell", "i loved it")],
    "multilabel": ["the movie was great", "shares fell"],
    "regression": [("the movie was great", "the film was awful"), ("shares fell", "shares fell")],
    "tagging": ["the market rose", ["news", "of", "the", "day"]],
    "qa": [{"question": "where is rose ?", "context": "shares rose in the market"}],
}


def overrides(task: str, tmp_path, tiny_bert_dir, strategy: str) -> list[str]:
    return [
        *task_overrides(task, tmp_path),
        f"encoder.model={tiny_bert_dir}",
        "encoder.max_length=32",
        f"strategy={strategy}",
        "train.epochs=1",
        "train.batch_size=8",
        f"cache_dir={tmp_path / 'cache'}",
        f"output_dir={tmp_path / 'run'}",
    ]


@pytest.mark.parametrize("strategy", ["feature", "finetune", "lora"])
@pytest.mark.parametrize("task", TASKS)
def test_each_task_trains_each_way_and_predicts(task, strategy, tmp_path, tiny_bert_dir):
    config = load_config(None, overrides(task, tmp_path, tiny_bert_dir, strategy))
    result = train(config, progress=False)
    metric = config.train.metric
    assert metric == task_for(config).metrics[0]
    assert all(np.isfinite(h["train_loss"]) for h in result.metrics["history"][1:])  # [0]: dev before training
    assert metric in result.metrics["dev"] and metric in result.metrics["test"]
    # the run reloads: evaluating its test split again gives the metrics written at training time
    again = evaluate(result.directory, progress=False)
    assert again[metric] == pytest.approx(result.metrics["test"][metric], abs=1e-6)
    written = sorted(p.name for p in (result.directory / "predictions").iterdir())
    suffix = task_for(config).prediction_suffix
    assert written == sorted([f"dev{suffix}", f"test{suffix}", "dev.units.npz", "test.units.npz"])
    # each split's evaluation units give back every number of its metrics, for compare's bootstrap
    for split in ("dev", "test"):
        units = Units.from_bytes((result.directory / "predictions" / f"{split}.units.npz").read_bytes())
        assert units.full() == pytest.approx({k: result.metrics[split][k] for k in units.full()}, abs=1e-9)
        assert set(task_for(config).metrics) <= set(units.full())
        assert len(units) == result.metrics["sizes"][split]
    found = predict(result.directory, RAW_INPUTS[task])
    assert len(found) == len(RAW_INPUTS[task])


def test_tagging_predictions_cover_every_word_in_the_input_scheme(tmp_path, tiny_bert_dir):
    """The dev file's first sentence (30 words, one of many pieces, one the tokenizer drops) needs windows."""
    config = load_config(None, overrides("tagging", tmp_path, tiny_bert_dir, "feature"))
    result = train(config, progress=False)
    assert result.metrics["encoder_inputs"]["dev"] > result.metrics["sizes"]["dev"]  # the long one has windows
    dev = read_conll(config.data.dev)
    lines = (result.directory / "predictions" / "dev.conll").read_text(encoding="utf-8").split("\n")
    rows = [line.split(" ") for line in lines if line]
    assert len(rows) == sum(len(s) for s in dev)
    assert all(tag == "O" or tag[:2] in ("I-", "B-") for *_, tag in rows)  # IOB1, like the input
    assert result.config.data.tag_scheme == "IOB1"  # detected, and recorded in the run's config
    text = predict_file(result.directory, config.data.dev)
    assert text.split("\n")[: len(dev[0])] == [line for line in lines[: len(dev[0])]]


def test_words_the_tokenizer_drops_or_splits_keep_their_vector(tmp_path, tiny_encoder):
    files = write_conll(tmp_path)
    dev = files["dev"]
    config = load_config(
        None, ["task=tagging", "encoder.max_length=32", f"data.train={files['train']}", f"data.dev={dev}"]
    )
    task = task_for(config)
    split = task.read(dev)
    tokenizer = tiny_encoder.tokenizer
    prepared = task.prepare(split, tokenizer, task.fit_labels(task.read(files["train"])))
    encoding = encode(tokenizer, prepared.examples, 32)
    assert len(prepared.examples) > len(split)  # the long sentence takes several windows
    for window, spans, ids in zip(prepared.examples, encoding.spans, encoding.columns["input_ids"]):
        assert len(spans) == len(window)  # every word has a first and a last token
        for word, (first, last) in zip(window, spans):
            text = tokenizer.decode(ids[first : last + 1]).replace(" ", "")
            assert text == ("[UNK]" if word == tokenizer.unk_token else word.lower().replace("\u200b", ""))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 12), min_size=1, max_size=60), st.integers(1, 30))
def test_word_windows_fit_and_every_word_is_owned_once(counts, budget):
    ranges = word_windows(counts, budget)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(counts)
    for start, stop in ranges:
        assert stop - start == 1 or sum(counts[start:stop]) <= budget
    owners = np.zeros(len(counts), dtype=int)
    for (start, stop), (own_start, own_stop) in zip(ranges, owned(ranges)):
        assert start <= own_start <= own_stop <= stop
        owners[own_start:own_stop] += 1
    assert (owners == 1).all()


def test_pairs_get_segments_and_longest_first_truncation(tiny_encoder):
    long = " ".join(["good"] * 40)
    encoding = encode(tiny_encoder.tokenizer, [TextPair("the movie", "was great"), TextPair(long, long)], 16)
    short_ids, short_types = encoding.columns["input_ids"][0], encoding.columns["token_type_ids"][0]
    assert tiny_encoder.tokenizer.decode(short_ids) == "[CLS] the movie [SEP] was great [SEP]"
    assert short_types == [0, 0, 0, 0, 1, 1, 1]
    assert len(encoding.columns["input_ids"][1]) == 16 and encoding.truncated == 1
    assert encoding.columns["token_type_ids"][1].count(1) in (7, 8)  # both texts were cut, to equal shares


@pytest.mark.parametrize("granularity", ["word", "token"])
def test_cached_features_give_the_live_outputs(granularity, tiny_encoder, tmp_path):
    words = [["the", "movie", "was", "antidisestablishment"], ["shares", "rose"], ["a", "good", "day", "!"]]
    examples = words if granularity == "word" else [" ".join(w) for w in words]
    spec = FeatureSpec((0, 1, 2), granularity, "mean", 32)
    cache = extract(tiny_encoder, examples, spec, tmp_path, dtype="float32", progress=False).cache
    torch.manual_seed(0)
    head = build_head("bilstm-crf", 32, 5, per_position=True, lstm_hidden=8, lstm_layers=1, dropout=0.0)
    model = TaskModel(ScalarMix(3), head).eval()
    cached, _ = predict_outputs(model, CachedFeatureDataset(cache), batch_size=2)
    live = LiveModel(EncoderFeatures(tiny_encoder.freeze().model, spec, True), model)
    dataset = TextDataset(tiny_encoder.tokenizer, examples, 32, granularity=granularity)
    live_out, _ = predict_outputs(live, dataset, batch_size=2)
    for row, length in enumerate(cache.rows()):  # padding past an example's length is not compared
        np.testing.assert_allclose(cached[row, :length], live_out[row, :length], atol=1e-4)


@pytest.mark.parametrize("kind", ["linear", "bilstm", "crf", "bilstm-crf"])
def test_sequence_heads_ignore_padding(kind):
    torch.manual_seed(0)
    head = build_head(kind, 6, 4, per_position=True, lstm_hidden=5, lstm_layers=1, dropout=0.0).eval()
    x = torch.randn(1, 7, 6)  # (B, T, D)
    alone = head(x[:, :4], torch.ones(1, 4, dtype=torch.bool))  # (1, 4, K)
    padded = head(torch.cat([x[:, :4], torch.randn(1, 3, 6) * 9], dim=1), torch.tensor([[1] * 4 + [0] * 3]).bool())
    torch.testing.assert_close(alone, padded[:, :4])
    tags = torch.tensor([[0, 1, 1, 2, -100, -100, -100]])
    assert torch.isfinite(head.loss(padded, tags))
    assert head.decode(padded, tags != -100)[0] == head.decode(alone, torch.ones(1, 4).bool())[0]


def test_multilabel_lists_and_regression_numbers_are_checked(tmp_path, tiny_bert_dir):
    bad = tmp_path / "train.csv"
    bad.write_text("sentence1,sentence2,score\na,b,1.5\na,b,high\n", encoding="utf-8")
    config = load_config(None, ["task=regression", "data.glue=stsb", f"data.train={bad}"])
    with pytest.raises(DataError, match=r"line 3: field 'score': 'high' is not a number"):
        task_for(config).check(task_for(config).read(bad), [])
    files = task_overrides("multilabel", tmp_path)
    config = load_config(None, files)
    task = task_for(config)
    train_split = task.read(config.data.train)
    labels = task.fit_labels(train_split)
    assert labels == ["film", "happy", "money"]
    targets = task.prepare(train_split, None, labels).targets
    assert targets.shape == (len(train_split), 3) and set(np.unique(targets)) <= {0.0, 1.0}
    assert (targets.sum(axis=1) == 0).any()  # a sentence with none of the labels


def test_head_and_metric_must_fit_the_task(tmp_path, tiny_bert_dir):
    from lmtransfer.core.errors import ConfigError

    with pytest.raises(ConfigError, match="task 'qa' takes a linear or bilstm head"):
        train(load_config(None, [*overrides("qa", tmp_path, tiny_bert_dir, "feature"), "head.type=crf"]))
    with pytest.raises(ConfigError, match="reports f1, precision, recall; not 'accuracy'"):
        task_for(load_config(None, ["task=tagging", "train.metric=accuracy"]))


def test_squad_answers_are_cut_from_the_context(tmp_path, tiny_bert_dir):
    config = load_config(None, overrides("qa", tmp_path, tiny_bert_dir, "feature"))
    result = train(config, progress=False)
    answers = json.loads((result.directory / "predictions" / "dev.json").read_text(encoding="utf-8"))
    contexts = {
        qa["id"]: paragraph["context"]
        for article in json.loads(Path(config.data.dev).read_text(encoding="utf-8"))["data"]
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    }
    assert set(answers) == set(contexts)
    assert all(answer in contexts[qid] for qid, answer in answers.items())
    assert result.metrics["encoder_inputs"]["dev"] > result.metrics["sizes"]["dev"]  # long contexts: windows


def test_squad_v2_questions_without_answer(tmp_path, tiny_bert_dir):
    """On v2 data the null answer competes; a threshold far below zero makes every answer ""."""
    (tmp_path / "v1").mkdir()
    files = write_squad(tmp_path / "v1")
    for name in ("train", "dev"):
        data = json.loads(files[name].read_text(encoding="utf-8"))
        for i, qa in enumerate(qa for p in data["data"][0]["paragraphs"] for qa in p["qas"]):
            if i % 2:
                qa["is_impossible"], qa["answers"] = True, []
        data["version"] = "v2.0"
        files[name] = tmp_path / f"{name}-v2.json"
        files[name].write_text(json.dumps(data), encoding="utf-8")
    base = [*overrides("qa", tmp_path, tiny_bert_dir, "feature"), f"data.train={files['train']}"]
    base += [f"data.dev={files['dev']}", f"data.test={files['dev']}", "qa.null_threshold=-1e9"]
    result = train(load_config(None, base), progress=False)
    answers = json.loads((result.directory / "predictions" / "dev.json").read_text(encoding="utf-8"))
    assert set(answers.values()) == {""}
    assert result.metrics["dev"]["exact_match"] == pytest.approx(50.0)  # the unanswerable half is right
